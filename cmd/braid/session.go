package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/braid-router/braid/api"
	"github.com/braid-router/braid/compile"
	"github.com/braid-router/braid/drivers/failpoint"
	"github.com/braid-router/braid/drivers/links"
	"github.com/braid-router/braid/drivers/record"
	"github.com/braid-router/braid/facts"
	"github.com/braid-router/braid/internal/control"
	"github.com/braid-router/braid/internal/netns"
	"github.com/braid-router/braid/internal/rundir"
	"github.com/braid-router/braid/reconcile"
	"github.com/braid-router/braid/reconcile/plan"
)

// host is braid's view of the namespace it runs in: its directories, its
// ownership record and the engine with its drivers.
type host struct {
	dirs   rundir.Dirs
	record *record.Record
	engine *reconcile.Engine
	writes *failpoint.Counter
	log    *slog.Logger
}

// openHost prepares the engine for the current network namespace.
func openHost(g *globals, stderr io.Writer) (*host, error) {
	name := g.netns
	if name == "" {
		var err error
		if name, err = netns.Current(); err != nil {
			return nil, fmt.Errorf("find the current network namespace: %w", err)
		}
	}
	level := slog.LevelWarn
	if g.verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	dirs := rundir.For(name)
	rec, err := record.Open(dirs.State)
	if err != nil {
		return nil, err
	}
	writes, err := failpoint.FromEnv()
	if err != nil {
		return nil, err
	}
	drivers, err := newDrivers(driverOptions{record: rec, writes: writes, log: log})
	if err != nil {
		return nil, err
	}
	return &host{
		dirs:   dirs,
		record: rec,
		engine: &reconcile.Engine{Drivers: drivers, Log: log, Checkers: newCheckers(drivers)},
		writes: writes,
		log:    log,
	}, nil
}

// prefetch starts the drivers' reads of the live state, so that they
// overlap with parsing and compiling the spec; the next plan uses them. A
// writer calls it only once it holds the lock (see reconcile.Prefetcher).
func (h *host) prefetch(ctx context.Context) {
	for _, d := range h.engine.Drivers {
		if p, ok := d.(reconcile.Prefetcher); ok {
			p.Prefetch(ctx)
		}
	}
}

// loadSpec reads a spec file, parses it (api.Parse: the one place that
// parses a document and checks its kind) and compiles it with the facts.
// It returns the file's bytes too: what apply records as the state to
// revert to.
func loadSpec(path string, f facts.Set) ([]byte, *api.Document, reconcile.Desired, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, reconcile.Desired{}, &exitCode{code: exitError, err: err}
	}
	doc, d, err := compileSpec(path, data, f)
	return data, doc, d, err
}

// compileSpec parses and compiles a spec, with what the kernel has now of
// the links it names in place of any observation in f: without a daemon
// nobody else watches them, and with one, this plan's observation of the
// kernel is the fresher.
func compileSpec(path string, data []byte, f facts.Set) (*api.Document, reconcile.Desired, error) {
	doc, err := api.Parse(path, data)
	if err != nil {
		return nil, reconcile.Desired{}, &exitCode{code: exitError, err: err}
	}
	observed, err := links.Observe(doc.Interfaces())
	if err != nil {
		return nil, reconcile.Desired{}, err
	}
	d, err := compile.Compile(doc, f.With(links.Owner, observed))
	if err != nil {
		return nil, reconcile.Desired{}, &exitCode{code: exitError, err: fmt.Errorf("%s: %w", path, err)}
	}
	return doc, d, nil
}

// isTerminal reports whether f is a terminal.
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// colorFor says whether to colour output written to w.
func colorFor(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && os.Getenv("NO_COLOR") == "" && os.Getenv("TERM") != "dumb" && isTerminal(f)
}

// facts are the facts a CLI plan or apply compiles with: the running
// daemon's, over its socket, or else the ones it persisted (without those
// that expired or were bound to its process). The CLI never learns facts
// itself, so a plan on a healthy box is empty.
func (h *host) facts(ctx context.Context) (facts.Set, error) {
	var f facts.Set
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	err := control.NewClient(h.dirs.Run).Get(ctx, control.PathFacts, &f)
	if err == nil {
		return f, nil
	}
	if !errors.Is(err, control.ErrNoDaemon) {
		h.log.Warn("could not ask the daemon for its facts; using the persisted ones", "err", err)
	}
	f, warn, err := facts.Load(h.dirs.State, time.Now())
	if warn != nil {
		h.log.Warn("ignoring the persisted facts", "err", warn)
	}
	return f, err
}

// daemonView is what a running daemon keeps, as a CLI plan needs it.
type daemonView struct {
	// bound are the process-bound objects it keeps now.
	bound map[string]bool
	// sessions are the sessions it runs.
	sessions []plan.Resource
}

// daemon asks the running daemon what it keeps; nil when none runs.
func (h *host) daemon(ctx context.Context) *daemonView {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c := control.NewClient(h.dirs.Run)
	var addrs []string
	if err := c.Get(ctx, control.PathBound, &addrs); err != nil {
		return nil
	}
	var snaps []reconcile.Snapshot
	if err := c.Get(ctx, control.PathSessions, &snaps); err != nil {
		h.log.Warn("could not ask the daemon for its sessions", "err", err)
	}
	v := &daemonView{bound: make(map[string]bool, len(addrs))}
	for _, a := range addrs {
		v.bound[a] = true
	}
	for _, s := range snaps {
		v.sessions = append(v.sessions, s)
	}
	return v
}

// kernelDesired is the part of desired a CLI command converges: the
// kernel objects, with the process-bound ones a running daemon keeps now
// (so that a plan does not count them as objects to remove) and none
// without a daemon (they are the daemon's, and stale when it is gone).
func kernelDesired(desired reconcile.Desired, daemon *daemonView) reconcile.Desired {
	return desired.WithoutProcessBound(func(b plan.ProcessBound) bool { return daemon != nil && daemon.bound[b.Address()] })
}

// attach adds the sessions (and, without a daemon, the process-bound
// objects) to a kernel plan.
func attach(p *reconcile.Plan, desired reconcile.Desired, daemon *daemonView) {
	sessions := reconcile.ResolveSessions(desired.Sessions)
	p.Sessions, p.ByDaemon = nil, nil
	if daemon != nil {
		p.Sessions = reconcile.DiffSessions(sessions, daemon.sessions)
		return
	}
	for _, b := range desired.ProcessBound() {
		p.ByDaemon = append(p.ByDaemon, b)
	}
	p.ByDaemon = append(p.ByDaemon, sessions...)
}
