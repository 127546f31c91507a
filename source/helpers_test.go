package source

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/braid-router/braid/internal/nstest"
)

// watcher runs src.Watch for the rest of the test and counts its
// notifications.
type watcher struct {
	n  atomic.Int64
	ch chan struct{}
}

// watch starts src.Watch in the background; the test's cleanup stops it
// and checks it returned nil.
func watch(t *testing.T, src Source) *watcher {
	t.Helper()
	w := &watcher{ch: make(chan struct{}, 100)}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	var err error
	go func() {
		defer wg.Done()
		err = src.Watch(ctx, func() {
			w.n.Add(1)
			w.ch <- struct{}{}
		})
	}()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		if err != nil {
			t.Errorf("Watch: %v", err)
		}
	})
	return w
}

// quiet is how long a test waits to be sure no (further) notification
// comes: many times the debounce.
const quiet = 300 * time.Millisecond

// expect waits for exactly n notifications: n within a generous time,
// then none more for quiet.
func (w *watcher) expect(t *testing.T, n int, what string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for i := 0; i < n; i++ {
		select {
		case <-w.ch:
		case <-deadline:
			t.Fatalf("%s: %d notification(s) within 10s, want %d", what, i, n)
		}
	}
	select {
	case <-w.ch:
		t.Fatalf("%s: more than %d notification(s)", what, n)
	case <-time.After(quiet):
	}
}

// changed waits for the notifications of one change: at least one within
// a generous time, then as many more as arrive until the watcher has been
// quiet for `quiet`. A change made of several steps (truncate and write,
// a rename aside, a mkdir and a rename in) may pass through intermediate
// states: on a busy machine the watcher can look between two steps and
// report each, so only "at least one" holds whatever the load. Changes
// made in one step (a rename over, an unlink) use expect(1).
func (w *watcher) changed(t *testing.T, what string) {
	t.Helper()
	select {
	case <-w.ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no notification within 10s", what)
	}
	deadline := time.After(10 * time.Second)
	for {
		select {
		case <-w.ch:
		case <-time.After(quiet):
			return
		case <-deadline:
			t.Fatalf("%s: notifications went on for 10s", what)
		}
	}
}

// changed0or1 waits until the watcher has been quiet for `quiet`, and
// fails if more than one notification came meanwhile (one may come from a
// look that started before the change the test just made known).
func (w *watcher) changed0or1(t *testing.T, what string) {
	t.Helper()
	n := 0
	deadline := time.After(10 * time.Second)
	for {
		select {
		case <-w.ch:
			if n++; n > 1 {
				t.Fatalf("%s: more than one notification", what)
			}
		case <-time.After(quiet):
			return
		case <-deadline:
			t.Fatalf("%s: notifications went on for 10s", what)
		}
	}
}

// slogTo returns a logger that writes text lines to b.
func slogTo(b *nstest.SyncBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
