package nstest

import (
	"runtime"
	"testing"

	"github.com/braid-router/braid/internal/netns"
)

// Enter locks the calling goroutine to its OS thread and moves that thread
// into namespace ns for the rest of the goroutine, so that sockets it opens
// and /proc/sys writes it makes land there. The thread is never moved back:
// it ends with the goroutine, and the runtime discards a locked thread whose
// goroutine exits. Call it from the test's own goroutine, so that t.Fatal
// keeps working.
func Enter(t testing.TB, ns string) {
	t.Helper()
	runtime.LockOSThread()
	if err := netns.Enter(ns); err != nil {
		t.Fatal(err)
	}
}
