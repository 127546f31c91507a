package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/braid-router/braid/api"
	"github.com/braid-router/braid/facts"
	"github.com/braid-router/braid/internal/atomicfile"
	"github.com/braid-router/braid/internal/control"
	"github.com/braid-router/braid/reconcile"
)

// Files in the state directory for commit-confirmed CLI applies.
const (
	// appliedFile is the spec the last successful CLI apply converged to:
	// what a revert goes back to.
	appliedFile = "applied.yaml"
	// pendingFile describes an apply waiting for `braid confirm`.
	pendingFile = "pending-confirm.json"
	// revertLog is where the detached reverter writes what it did.
	revertLog = "revert.log"
)

// pending is an apply that will be reverted unless confirmed.
type pending struct {
	// Token ties the pending file to its reverter process.
	Token    string    `json:"token"`
	Deadline time.Time `json:"deadline"`
	// Previous is the spec to go back to; empty means destroy (braid
	// owned nothing before).
	Previous []byte `json:"previous,omitempty"`
	// PreviousName names it in errors.
	PreviousName string `json:"previousName,omitempty"`
	// Reverter is the detached process holding the timer.
	Reverter int `json:"reverter"`
}

// errCorruptPending is a pending-confirm.json that cannot be read.
type errCorruptPending struct {
	path string
	err  error
}

func (e *errCorruptPending) Error() string {
	return fmt.Sprintf("%s is corrupt (%v): braid cannot tell which change made with --confirm is waiting", e.path, e.err)
}

func (e *errCorruptPending) Unwrap() error { return e.err }

// readPending reads the pending confirmation in dir: nil when there is
// none, an *errCorruptPending when it cannot be read.
func readPending(dir string) (*pending, error) {
	path := filepath.Join(dir, pendingFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	p, err := decodePending(b)
	if err != nil {
		return nil, &errCorruptPending{path: path, err: err}
	}
	return p, nil
}

// decodePending decodes a pending confirmation; one without a token or a
// deadline is not one.
func decodePending(b []byte) (*pending, error) {
	var p pending
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, err
	}
	if p.Token == "" || p.Deadline.IsZero() {
		return nil, errors.New("no token or no deadline")
	}
	return &p, nil
}

func writeFileAtomic(path string, b []byte) error { return atomicfile.Write(path, b, 0o600) }

// armRevert records the pending apply and starts the detached reverter,
// which goes back to previous (or destroys, if nil) at the deadline unless
// `braid confirm` comes first. It survives the end of the SSH session that
// started it: it is in a session of its own and ignores SIGHUP.
func armRevert(h *host, g *globals, within time.Duration, previous []byte) (*pending, error) {
	tok := make([]byte, 8)
	rand.Read(tok)
	p := &pending{Token: hex.EncodeToString(tok), Deadline: time.Now().Add(within), Previous: previous, PreviousName: filepath.Join(h.dirs.State, appliedFile)}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(filepath.Join(h.dirs.State, revertLog), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("revert log: %w", err)
	}
	defer logf.Close()
	args := []string{"revert-unconfirmed", "--token", p.Token}
	if g.netns != "" {
		args = append([]string{"--netns", g.netns}, args...)
	}
	// Write the pending file before the reverter starts, so that it always
	// finds it; the reverter's PID is added right after.
	if err := savePending(h, p); err != nil {
		return nil, err
	}
	handover, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	// The handover goes through a pipe this process writes before it
	// returns: left to os/exec's copying goroutine, it could be cut short
	// by this process exiting.
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("start the reverter: %w", err)
	}
	cmd := exec.Command(exe, args...)
	cmd.Stdin = pr
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	pr.Close()
	if err == nil {
		// The reverter reads it all at start: this returns once it has.
		_, err = pw.Write(handover)
	}
	pw.Close()
	if err != nil {
		if cmd.Process != nil {
			cmd.Process.Kill()
		}
		os.Remove(filepath.Join(h.dirs.State, pendingFile))
		return nil, fmt.Errorf("start the reverter: %w", err)
	}
	p.Reverter = cmd.Process.Pid
	cmd.Process.Release()
	return p, savePending(h, p)
}

func savePending(h *host, p *pending) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(h.dirs.State, pendingFile), b)
}

func newRevertCmd(g *globals) *cobra.Command {
	var token string
	cmd := &cobra.Command{
		Use:    "revert-unconfirmed --token T",
		Short:  "The detached reverter of apply --confirm (internal)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// A dropped SSH session must not cancel the revert.
			signal.Ignore(syscall.SIGHUP)
			h, err := openHost(g, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			// The apply hands the reverter its own copy of the pending
			// confirmation on stdin, so that the file becoming unreadable
			// never disarms the revert.
			b, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), 2*api.MaxFileSize))
			if err != nil {
				return fmt.Errorf("read the pending confirmation: %w", err)
			}
			mine, err := decodePending(b)
			if err != nil || mine.Token != token {
				return fmt.Errorf("the pending confirmation handed over on stdin is not this reverter's (%v)", err)
			}
			time.Sleep(time.Until(mine.Deadline))
			return revertIfPending(cmd.Context(), h, mine)
		},
	}
	cmd.Flags().StringVar(&token, "token", "", "the pending apply's token")
	return cmd
}

// revertIfPending goes back to the previous state, under the lock, if the
// apply the reverter armed (mine, as it read it when it started) is still
// unconfirmed: its pending file is still there, with its token. A pending
// file that has become unreadable is no confirmation: the reverter reverts
// with its own copy.
func revertIfPending(ctx context.Context, h *host, mine *pending) error {
	var lock interface{ Unlock() error }
	for {
		l, err := h.dirs.TryLock()
		if err == nil {
			lock = l
			break
		}
		// Someone is applying; wait for them rather than give up: the
		// revert is the safety net.
		time.Sleep(200 * time.Millisecond)
	}
	defer lock.Unlock()
	p, err := readPending(h.dirs.State)
	var corrupt *errCorruptPending
	switch {
	case errors.As(err, &corrupt):
		h.log.Warn("reverting with the copy this reverter read when it started", "err", err)
		p = mine
	case err != nil || p == nil || p.Token != mine.Token:
		return err // confirmed, or superseded by a newer apply
	}
	h.log.Warn("not confirmed in time: reverting", "deadline", p.Deadline)
	var desired reconcile.Desired
	if len(p.Previous) > 0 {
		f, warn, err := facts.Load(h.dirs.State, time.Now())
		if err != nil {
			return fmt.Errorf("revert: %w", err)
		}
		if warn != nil {
			h.log.Warn("revert: ignoring the persisted facts", "err", warn)
		}
		if _, desired, err = compileSpec(p.PreviousName, p.Previous, f); err != nil {
			return fmt.Errorf("revert: the previous spec: %w", err)
		}
	}
	pl, _, err := h.engine.Converge(ctx, kernelDesired(desired, nil), reconcile.ConvergeOptions{})
	if err != nil {
		return fmt.Errorf("revert: %w", err)
	}
	applied := filepath.Join(h.dirs.State, appliedFile)
	if len(p.Previous) > 0 {
		writeFileAtomic(applied, p.Previous)
	} else {
		os.Remove(applied)
	}
	os.Remove(filepath.Join(h.dirs.State, pendingFile))
	h.log.Warn("reverted to the state before the unconfirmed apply", "changes", len(pl.Changes))
	fmt.Fprintf(os.Stderr, "braid: reverted %d changes at %s: the apply was not confirmed\n", len(pl.Changes), time.Now().Format(time.RFC3339))
	return nil
}

func newConfirmCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "confirm",
		Short: "Keep the change made by apply --confirm (or the daemon's trial revision)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			h, err := openHost(g, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			var answer struct {
				Revision string `json:"revision"`
				Error    string `json:"error"`
			}
			err = control.NewClient(h.dirs.Run).Post(cmd.Context(), control.PathConfirm, &answer)
			switch {
			case err == nil && answer.Error == "":
				fmt.Fprintf(out, "Confirmed revision %s: the daemon keeps it.\n", answer.Revision)
				return nil
			case err == nil:
				return &exitCode{code: exitError, err: errors.New(answer.Error)}
			case !errors.Is(err, control.ErrNoDaemon):
				return err
			}
			lock, err := h.dirs.TryLock()
			if err != nil {
				return err
			}
			defer lock.Unlock()
			p, err := readPending(h.dirs.State)
			var corrupt *errCorruptPending
			switch {
			case errors.As(err, &corrupt):
				return &exitCode{code: exitError, err: fmt.Errorf("%w; its reverter reverts it at its deadline (see %s). To keep a change, apply it again", err, filepath.Join(h.dirs.State, revertLog))}
			case err != nil:
				return err
			case p == nil:
				return &exitCode{code: exitError, err: fmt.Errorf("nothing to confirm in namespace %s", h.dirs.Namespace)}
			}
			if err := os.Remove(filepath.Join(h.dirs.State, pendingFile)); err != nil {
				return err
			}
			if p.Reverter > 0 {
				syscall.Kill(p.Reverter, syscall.SIGTERM)
			}
			fmt.Fprintf(out, "Confirmed: the change stays (it would have been reverted at %s).\n", p.Deadline.Format(time.TimeOnly))
			return nil
		},
	}
}
