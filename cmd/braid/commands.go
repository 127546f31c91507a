package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v4"

	"github.com/braid-router/braid/api"
	nl "github.com/braid-router/braid/drivers/netlink"
	"github.com/braid-router/braid/facts"
	"github.com/braid-router/braid/internal/control"
	"github.com/braid-router/braid/reconcile"
	"github.com/braid-router/braid/reconcile/plan"
)

func newValidateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "validate FILE...",
		Short: "Check spec files; exit 1 with every error (FILE:LINE:COL: field: message)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			bad := 0
			for _, path := range args {
				doc, err := api.Load(path)
				if err != nil {
					fmt.Fprintln(cmd.ErrOrStderr(), err)
					bad++
					continue
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: valid %s %q\n", path, doc.Kind, doc.Metadata.Name)
			}
			if bad > 0 {
				return &exitCode{code: exitError}
			}
			return nil
		},
	}
}

func newPlanCmd(g *globals) *cobra.Command {
	var file string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "plan -f FILE",
		Short: "Show what apply would change; exit 0 no changes, 2 changes, 1 error",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			h, err := openHost(g, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			h.prefetch(cmd.Context())
			f, err := h.facts(cmd.Context())
			if err != nil {
				return err
			}
			_, _, desired, err := loadSpec(file, f)
			if err != nil {
				return err
			}
			daemon := h.daemon(cmd.Context())
			p, err := h.engine.Plan(cmd.Context(), kernelDesired(desired, daemon))
			if err != nil {
				return err
			}
			attach(p, desired, daemon)
			if err := printPlan(cmd.OutOrStdout(), p, h.dirs.Namespace, asJSON); err != nil {
				return err
			}
			return planExit(p)
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "spec file")
	cmd.MarkFlagRequired("file")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the plan as JSON (see README: plan document)")
	return cmd
}

// planExit maps a plan to the exit code of `braid plan`.
func planExit(p *reconcile.Plan) error {
	switch {
	case len(p.Conflicts) > 0:
		return &exitCode{code: exitError, err: conflictError(p.Conflicts)}
	case !p.Empty():
		return &exitCode{code: exitChanges}
	}
	return nil
}

func conflictError(cs []plan.Conflict) error {
	var names []string
	for _, c := range cs {
		names = append(names, c.Address)
	}
	return fmt.Errorf("%d conflict(s) with foreign objects, left alone: %s", len(cs), strings.Join(names, ", "))
}

func printPlan(w io.Writer, p *reconcile.Plan, ns string, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(p.Document(ns))
	}
	if !p.Empty() {
		fmt.Fprintf(w, "braid will make these changes in network namespace %s:\n\n", ns)
	}
	return p.WriteText(w, colorFor(w))
}

func newApplyCmd(g *globals) *cobra.Command {
	var file string
	var force bool
	var within time.Duration
	cmd := &cobra.Command{
		Use:   "apply -f FILE [--confirm DURATION]",
		Short: "Plan, apply and verify; exit 0 only when the box is converged",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts := convergeOptions{force: force, confirm: within}
			return converge(cmd, g, func(f facts.Set) (reconcile.Desired, error) {
				data, _, desired, err := loadSpec(file, f)
				opts.spec = data
				return desired, err
			}, &opts)
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "spec file")
	cmd.MarkFlagRequired("file")
	cmd.Flags().BoolVar(&force, "force", false, "apply even if the plan would cut this SSH session")
	cmd.Flags().DurationVar(&within, "confirm", 0, "revert to the previous state unless `braid confirm` comes within this long (e.g. 2m)")
	return cmd
}

// convergeOptions tune converge.
type convergeOptions struct {
	// force skips the SSH guard.
	force bool
	// ask, if set, is called with the printed plan before anything is
	// applied; an error cancels.
	ask func(*reconcile.Plan) error
	// destroy words the output for `braid destroy`.
	destroy bool
	// confirm, when positive, reverts the change unless `braid confirm`
	// comes within this long.
	confirm time.Duration
	// spec is the applied spec's bytes, recorded as what a later revert
	// goes back to; set by load.
	spec []byte
}

// converge plans, applies and verifies the desired state under the
// namespace lock (reconcile.Engine.Converge), restoring this run's changes
// if the kernel refuses one. load gives the desired state; it runs under
// the lock, while the drivers read the live state. Holding the lock means
// no daemon runs: its sessions and process-bound objects are listed as
// run by `braid run`, and the run is converged once the kernel objects
// verify.
func converge(cmd *cobra.Command, g *globals, load func(facts.Set) (reconcile.Desired, error), opts *convergeOptions) error {
	ctx := cmd.Context()
	out := cmd.OutOrStdout()
	h, err := openHost(g, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	lock, err := h.dirs.TryLock()
	if err != nil {
		return lockedOut(ctx, h, err, load)
	}
	defer lock.Unlock()
	h.prefetch(ctx)
	f, err := h.facts(ctx)
	if err != nil {
		return err
	}
	desired, err := load(f)
	if err != nil {
		return err
	}
	// What a revert goes back to: the last confirmed spec.
	waiting, err := readPending(h.dirs.State)
	var corrupt *errCorruptPending
	switch {
	case errors.As(err, &corrupt):
		// Which state a revert would go back to is unknown: change
		// nothing until the reverter has run or a person decides.
		return &exitCode{code: exitError, err: fmt.Errorf("%w; its reverter reverts it at its deadline (see %s). Wait for it, or remove %s to give the revert up, then apply again",
			err, filepath.Join(h.dirs.State, revertLog), corrupt.path)}
	case err != nil:
		return err
	}
	previous, _ := os.ReadFile(filepath.Join(h.dirs.State, appliedFile))
	if waiting != nil {
		previous = waiting.Previous
	}
	ssh, inSSH := nl.SSHFromOS()
	var before nl.Path
	var start time.Time
	var applied time.Duration
	p, res, err := h.engine.Converge(ctx, kernelDesired(desired, nil), reconcile.ConvergeOptions{
		Rollback: true,
		BeforeApply: func(p *reconcile.Plan) error {
			attach(p, desired, nil)
			if err := printPlan(out, p, h.dirs.Namespace, false); err != nil {
				return err
			}
			if opts.ask != nil {
				if err := opts.ask(p); err != nil {
					return err
				}
			}
			if inSSH {
				var err error
				if before, err = nl.PathTo(ssh); err != nil {
					return fmt.Errorf("find the path of this SSH session (use --force to skip): %w", err)
				}
				if why := nl.CutsSSH(p.Changes, ssh, before); why != "" && !opts.force {
					return &exitCode{code: exitError, err: fmt.Errorf("refusing to apply: this plan would cut your SSH session from %s: %s (use --force to apply anyway)", ssh.Client, why)}
				}
			}
			fmt.Fprintln(out)
			start = time.Now()
			return nil
		},
		AfterApply: func(p *reconcile.Plan, res *reconcile.Result) error {
			applied = time.Since(start)
			if !inSSH || opts.force {
				return nil
			}
			after, perr := nl.PathTo(ssh)
			if perr != nil || after != before {
				return fmt.Errorf("the path to your SSH client %s changed (%v -> %v, %v) (use --force to apply anyway)", ssh.Client, before, after, perr)
			}
			return nil
		},
	})
	if p == nil {
		return err
	}
	attach(p, desired, nil)
	if len(p.Changes) == 0 {
		if opts.destroy && len(p.Conflicts) == 0 {
			fmt.Fprintf(out, "Nothing to destroy: braid owns nothing in network namespace %s.\n", h.dirs.Namespace)
			return nil
		}
		if err := printPlan(out, p, h.dirs.Namespace, false); err != nil {
			return err
		}
		if waiting != nil {
			fmt.Fprintf(out, "\nA change waits for `braid confirm` until %s, or it is reverted.\n", waiting.Deadline.Format(time.TimeOnly))
		}
		sayDaemon(out, p)
		if len(p.Conflicts) > 0 {
			return &exitCode{code: exitError, err: conflictError(p.Conflicts)}
		}
		return nil
	}
	var verr *reconcile.VerifyError
	switch {
	case res == nil:
		// Cancelled before anything was applied (asked, refused over SSH).
		return err
	case err != nil && !errors.As(err, &verr):
		return &exitCode{code: exitError, err: fmt.Errorf("apply: %w", err)}
	}
	add, change, remove := p.Counts()
	fmt.Fprintf(out, "Applied: %d added, %d changed, %d removed in %s.\n", add, change, remove, applied.Round(time.Millisecond))
	if rerr := recordApplied(h, g, out, opts, previous, waiting); rerr != nil {
		return &exitCode{code: exitError, err: rerr}
	}
	if err != nil {
		return &exitCode{code: exitError, err: err}
	}
	if len(p.Conflicts) > 0 {
		return &exitCode{code: exitError, err: conflictError(p.Conflicts)}
	}
	if opts.destroy {
		fmt.Fprintln(out, "Verified: braid owns nothing here any more, and what it changed is restored.")
	} else {
		fmt.Fprintf(out, "Verified: the live state matches the spec%s.\n", p.WarningSuffix())
	}
	sayDaemon(out, p)
	return nil
}

// sayDaemon says plainly that what the plan lists as run by `braid run`
// is not running.
func sayDaemon(out io.Writer, p *reconcile.Plan) {
	if len(p.ByDaemon) > 0 {
		fmt.Fprintf(out, "%d session(s) and process-bound object(s) above need `braid run`; this command converges only the kernel objects.\n", len(p.ByDaemon))
	}
}

func newShowCmd(g *globals) *cobra.Command {
	var asJSON, asYAML, effective bool
	var file string
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Show the live state braid owns (or, with --effective -f FILE, the spec with defaults)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			if effective {
				if file == "" {
					return errors.New("--effective needs -f FILE")
				}
				doc, err := api.Load(file)
				if err != nil {
					return &exitCode{code: exitError, err: err}
				}
				b, err := api.Effective(doc)
				if err != nil {
					return err
				}
				_, err = out.Write(b)
				return err
			}
			h, err := openHost(g, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			live, err := h.engine.Observe(cmd.Context(), reconcile.Desired{})
			if err != nil {
				return err
			}
			var objs []shownObject
			for _, part := range live {
				for _, o := range part {
					if o.Foreign {
						continue
					}
					objs = append(objs, shownObject{Address: o.Address(), Fields: fieldValues(o.Fields())})
				}
			}
			doc := showDocument{Namespace: h.dirs.Namespace, Objects: objs}
			switch {
			case asJSON:
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(doc)
			case asYAML:
				b, err := yaml.Marshal(doc)
				if err != nil {
					return err
				}
				_, err = out.Write(b)
				return err
			}
			fmt.Fprintf(out, "braid owns %d objects in network namespace %s:\n", len(objs), doc.Namespace)
			for _, o := range objs {
				fmt.Fprintf(out, "  %s", o.Address)
				for _, f := range o.Fields {
					fmt.Fprintf(out, " %s=%s", f.Name, f.Value)
				}
				fmt.Fprintln(out)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	cmd.Flags().BoolVar(&asYAML, "yaml", false, "print as YAML")
	cmd.Flags().BoolVar(&effective, "effective", false, "print the spec of -f FILE with its defaults filled in")
	cmd.Flags().StringVarP(&file, "file", "f", "", "spec file (with --effective)")
	cmd.MarkFlagsMutuallyExclusive("json", "yaml")
	return cmd
}

// showDocument is the output of `braid show --json|--yaml`.
type showDocument struct {
	Namespace string        `json:"namespace" yaml:"namespace"`
	Objects   []shownObject `json:"objects" yaml:"objects"`
}

type shownObject struct {
	Address string       `json:"address" yaml:"address"`
	Fields  []shownField `json:"fields" yaml:"fields"`
}

type shownField struct {
	Name  string `json:"name" yaml:"name"`
	Value string `json:"value" yaml:"value"`
}

func fieldValues(fs []plan.Field) []shownField {
	out := make([]shownField, 0, len(fs))
	for _, f := range fs {
		out = append(out, shownField{Name: f.Name, Value: f.Display()})
	}
	return out
}

func newDestroyCmd(g *globals) *cobra.Command {
	var yes, force bool
	cmd := &cobra.Command{
		Use:   "destroy",
		Short: "Remove everything braid owns and restore what it changed",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts := convergeOptions{force: force, destroy: true}
			if !yes {
				opts.ask = func(*reconcile.Plan) error {
					if !isTerminal(os.Stdin) {
						return &exitCode{code: exitError, err: errors.New("destroy needs --yes when not run on a terminal")}
					}
					if !confirm(cmd.InOrStdin(), cmd.OutOrStdout(), "\nDestroy all of the above? Only 'yes' is accepted: ") {
						return &exitCode{code: exitError, err: errors.New("destroy cancelled; nothing was changed")}
					}
					return nil
				}
			}
			return converge(cmd, g, func(facts.Set) (reconcile.Desired, error) { return reconcile.Desired{}, nil }, &opts)
		},
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "do not ask")
	cmd.Flags().BoolVar(&force, "force", false, "destroy even if it would cut this SSH session")
	return cmd
}

func confirm(in io.Reader, out io.Writer, prompt string) bool {
	fmt.Fprint(out, prompt)
	line, _ := bufio.NewReader(in).ReadString('\n')
	return strings.TrimSpace(line) == "yes"
}

// recordApplied remembers what was applied, so that a later apply --confirm
// can go back to it, and arms the reverter for this one if asked.
func recordApplied(h *host, g *globals, out io.Writer, opts *convergeOptions, previous []byte, waiting *pending) error {
	applied := filepath.Join(h.dirs.State, appliedFile)
	if waiting != nil {
		// This apply replaces the change that waited: its reverter finds
		// the token gone and stands down.
		os.Remove(filepath.Join(h.dirs.State, pendingFile))
		if waiting.Reverter > 0 {
			syscall.Kill(waiting.Reverter, syscall.SIGTERM)
		}
		if opts.confirm <= 0 {
			fmt.Fprintln(out, "This apply replaces the change that was waiting for confirmation.")
		}
	}
	if opts.confirm > 0 {
		p, err := armRevert(h, g, opts.confirm, previous)
		if err != nil {
			return fmt.Errorf("arm the revert (the change is applied; nothing will revert it): %w", err)
		}
		fmt.Fprintf(out, "Run `braid confirm` before %s, or this change is reverted (the reverter, pid %d, survives the end of this session).\n",
			p.Deadline.Format(time.TimeOnly), p.Reverter)
	}
	if opts.destroy {
		os.Remove(applied)
		return nil
	}
	return writeFileAtomic(applied, opts.spec)
}

// lockedOut explains why this process may not write: an invalid spec is
// said first (it would be refused anyway), then who holds the lock, and,
// when it is the daemon, where its spec comes from, which is the place to
// make the change.
func lockedOut(ctx context.Context, h *host, lockErr error, load func(facts.Set) (reconcile.Desired, error)) error {
	if _, err := load(facts.Set{}); err != nil {
		return err
	}
	var st reconcile.Status
	sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := control.NewClient(h.dirs.Run).Get(sctx, control.PathStatus, &st); err == nil {
		return &exitCode{code: exitError, err: fmt.Errorf("braid run is the one writer of network namespace %s (%w); change its spec instead: %s", h.dirs.Namespace, lockErr, st.Source)}
	}
	return &exitCode{code: exitError, err: lockErr}
}
