// Package labtest builds a lab per test, under a unique short name so that
// tests (and test binaries) run side by side, and removes it when the test
// ends.
//
// Importing labtest makes the test binary able to run the lab's services
// itself: the lab starts them by re-executing the test binary with
// lab.HelperEnv set, and this package's init runs lab.Serve instead of the
// tests in that case. Test binaries therefore need no braid binary and no
// TestMain.
package labtest

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/braid-router/braid/internal/nstest"
	"github.com/braid-router/braid/lab"
)

func init() {
	if os.Getenv(lab.HelperEnv) == "" {
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	err := lab.Serve(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// Timeouts for building and removing a test's lab.
const (
	upTimeout   = 60 * time.Second
	downTimeout = 30 * time.Second
)

// Config returns the configuration of a test lab: a fresh name ("lt"
// and six hex digits) and the test binary as the services' helper. Change
// it (say, its Topology) and pass it to Up.
//
// Under the race detector a helper would sleep a second as it exits, so
// the helpers run with GORACE's atexit_sleep_ms=0.
func Config(t testing.TB) lab.Config {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("labtest: %v", err)
	}
	return lab.Config{
		Name:   nstest.Name("lt"),
		Helper: []string{exe},
		Env:    []string{"GORACE=" + strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0")},
	}
}

// Up builds the lab cfg describes and removes it when the test ends. The
// test needs root and the programs the lab runs (radvd): without them, it
// is skipped, or fails when CI=true.
func Up(t testing.TB, cfg lab.Config) *lab.Lab {
	t.Helper()
	nstest.RequireRoot(t)
	topo := lab.Default()
	if cfg.Topology != nil {
		topo = *cfg.Topology
	}
	for _, p := range topo.Processes {
		if len(p.Command) > 0 {
			nstest.RequireBinary(t, program(p.Command))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), upTimeout)
	defer cancel()
	l, err := lab.Up(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), downTimeout)
		defer cancel()
		if err := l.Down(ctx); err != nil {
			t.Errorf("labtest: %v", err)
		}
	})
	return l
}

// New builds the standard lab for the test and removes it when the test
// ends.
func New(t testing.TB) *lab.Lab {
	t.Helper()
	nstest.RequireRoot(t)
	return Up(t, Config(t))
}

// program is the program a command line runs: its first word, or, for
// env(1), the first word after env's variable assignments (the lab runs
// Kea with its own PID file directory).
func program(argv []string) string {
	if filepath.Base(argv[0]) != "env" {
		return argv[0]
	}
	for _, a := range argv[1:] {
		if !strings.Contains(a, "=") {
			return a
		}
	}
	return argv[0]
}
