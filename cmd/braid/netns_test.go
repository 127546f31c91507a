package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/braid-router/braid/internal/netns"
)

// nsInode is the inode of a network namespace file.
func nsInode(t *testing.T, path string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// With --netns, every thread of braid is inside the namespace, and so are
// the threads the runtime starts later: a daemon that has run a pass, its
// sockets, timers and goroutines started, holds only threads inside. The
// static build moves all its threads at once; one built with cgo, which
// cannot, enters on one thread and re-executes itself.
func TestNetnsHoldsEveryThread(t *testing.T) {
	t.Run("static", func(t *testing.T) { testNetnsHoldsEveryThread(t, braidBin) })
	t.Run("cgo", func(t *testing.T) {
		bin := filepath.Join(t.TempDir(), "braid-cgo")
		build := exec.Command("go", "build", "-tags", "braidtest", "-o", bin, ".")
		build.Env = append(os.Environ(), "CGO_ENABLED=1")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build braid with cgo (needs gcc): %v\n%s", err, out)
		}
		testNetnsHoldsEveryThread(t, bin)
	})
}

func testNetnsHoldsEveryThread(t *testing.T, bin string) {
	saved := braidBin
	braidBin = bin
	t.Cleanup(func() { braidBin = saved })
	b := newBox(t)
	d := b.startDaemon("-f", writeSpec(t, labSpec))
	d.until("the first pass", converged)
	want := nsInode(t, filepath.Join(netns.NamedDir, b.ns))
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", d.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) < 2 {
		t.Fatalf("%d threads: nothing to check", len(tasks))
	}
	for _, task := range tasks {
		if got := nsInode(t, fmt.Sprintf("/proc/%d/task/%s/ns/net", d.cmd.Process.Pid, task.Name())); got != want {
			t.Errorf("thread %s is in network namespace %d, want %s (%d)", task.Name(), got, b.ns, want)
		}
	}
}
