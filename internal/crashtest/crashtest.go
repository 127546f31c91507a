// Package crashtest ends a driver's batch at a chosen kernel write, as a
// crash would, in a child process of the test (the failpoint, armed there,
// ends the process), so that the test can check what the crash left and
// that the next apply recovers from it.
//
// The test starts the child with Run, and the child is the same test
// function, which begins with Child:
//
//	func TestCrash(t *testing.T) {
//		if c := crashtest.Child(); c != nil {
//			d, err := New(Options{Writes: c.Writes})
//			c.Check(err)
//			c.ApplyBatch(d, want)
//		}
//		ns := nstest.New(t)
//		crashtest.Run(t, ns, "", 1)
//		// what the crash left in ns
//	}
package crashtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/braid-router/braid/drivers/failpoint"
	"github.com/braid-router/braid/internal/netns"
	"github.com/braid-router/braid/reconcile/plan"
)

// What Run tells the child.
const (
	nsEnv  = "BRAID_CRASHTEST_NS"
	dirEnv = "BRAID_CRASHTEST_DIR"
)

// Run runs t's test again in a child process, in the network namespace
// ns, with dir (a state directory, "" for none) and the failpoint armed
// at the write at. It fails t unless the child ended at the failpoint.
func Run(t testing.TB, ns, dir string, at int) {
	t.Helper()
	test, _, _ := strings.Cut(t.Name(), "/")
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$")
	cmd.Env = append(os.Environ(), nsEnv+"="+ns, dirEnv+"="+dir, failpoint.Env+"="+strconv.Itoa(at))
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != failpoint.ExitCode {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

// Proc is the child process Run started: its thread is in the namespace,
// and its failpoint armed.
type Proc struct {
	// Writes is the armed failpoint, for the driver.
	Writes *failpoint.Counter
	// Dir is the directory Run was given.
	Dir string
}

// Child returns the child process Run started, after moving the calling
// goroutine's thread, locked to it, into the namespace; nil in any other
// process (the test itself).
func Child() *Proc {
	ns := os.Getenv(nsEnv)
	if ns == "" {
		return nil
	}
	c := &Proc{Dir: os.Getenv(dirEnv)}
	runtime.LockOSThread()
	c.Check(netns.Enter(ns))
	var err error
	c.Writes, err = failpoint.FromEnv()
	c.Check(err)
	return c
}

// Check ends the child, as failed, if err is not nil.
func (c *Proc) Check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(1)
	}
}

// Driver is the part of a driver ApplyBatch uses.
type Driver interface {
	Observe(ctx context.Context, desired []plan.Resource) ([]plan.Observed, error)
	ApplyBatch(ctx context.Context, changes []plan.Change) (int, error)
}

// ApplyBatch plans want with d and applies the plan in one batch, which
// the failpoint ends. It never returns: a batch that ends otherwise fails
// the child.
func (c *Proc) ApplyBatch(d Driver, want []plan.Resource) {
	live, err := d.Observe(context.Background(), want)
	c.Check(err)
	changes, _ := plan.Diff(want, live)
	n, err := d.ApplyBatch(context.Background(), changes)
	c.Check(fmt.Errorf("the failpoint did not fire: applied %d of %d (%v)", n, len(changes), err))
}
