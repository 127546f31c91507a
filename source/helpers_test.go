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

// settle waits until Watch has made its first look and drains whatever it
// reported, so the test starts from a quiet watcher.
func (w *watcher) settle() {
	time.Sleep(quiet)
	for {
		select {
		case <-w.ch:
		default:
			return
		}
	}
}

// slogTo returns a logger that writes text lines to b.
func slogTo(b *nstest.SyncBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
