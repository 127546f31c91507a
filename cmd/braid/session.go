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
	"github.com/braid-router/braid/internal/control"
	"github.com/braid-router/braid/internal/netns"
	"github.com/braid-router/braid/internal/rundir"
	"github.com/braid-router/braid/reconcile"
	"github.com/braid-router/braid/reconcile/failpoint"
	"github.com/braid-router/braid/reconcile/record"
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
		engine: &reconcile.Engine{Drivers: drivers, Log: log},
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

// loadRouter reads a spec file and compiles it. Only kind Router is
// converged on a box.
func loadRouter(path string, facts reconcile.Facts) (*api.Document, reconcile.Desired, error) {
	_, doc, d, err := loadRouterBytes(path, facts)
	return doc, d, err
}

// loadRouterBytes is loadRouter that also returns the file's bytes (what
// apply records as the state to revert to).
func loadRouterBytes(path string, facts reconcile.Facts) ([]byte, *api.Document, reconcile.Desired, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, reconcile.Desired{}, &exitCode{code: exitError, err: err}
	}
	doc, d, err := compileRouter(path, data, facts)
	return data, doc, d, err
}

// compileRouter parses and compiles a router spec.
func compileRouter(path string, data []byte, facts reconcile.Facts) (*api.Document, reconcile.Desired, error) {
	doc, err := api.Parse(path, data)
	if err != nil {
		return nil, reconcile.Desired{}, &exitCode{code: exitError, err: err}
	}
	if doc.Kind != api.KindRouter {
		return nil, reconcile.Desired{}, &exitCode{code: exitError, err: fmt.Errorf("%s: kind %s is not converged by this version of braid (only Router)", path, doc.Kind)}
	}
	d, err := reconcile.Compile(doc.Router, facts)
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
// daemon's, over its socket, or else the ones it persisted. The CLI never
// learns facts itself, so a plan on a healthy box is empty.
func (h *host) facts(ctx context.Context) (reconcile.Facts, error) {
	var f reconcile.Facts
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	err := control.NewClient(h.dirs.Run).Get(ctx, control.PathFacts, &f)
	if err == nil {
		return f, nil
	}
	if !errors.Is(err, control.ErrNoDaemon) {
		h.log.Warn("could not ask the daemon for its facts; using the persisted ones", "err", err)
	}
	return reconcile.LoadFacts(h.dirs.State)
}

// daemonBound lists the process-bound resources a running daemon keeps
// (none without a daemon: then they are stale and theirs to remove).
func (h *host) daemonBound(ctx context.Context) map[string]bool {
	var addrs []string
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := control.NewClient(h.dirs.Run).Get(ctx, control.PathBound, &addrs); err != nil {
		return nil
	}
	m := make(map[string]bool, len(addrs))
	for _, a := range addrs {
		m[a] = true
	}
	return m
}
