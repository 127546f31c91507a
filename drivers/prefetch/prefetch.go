// Package prefetch holds a driver's read of the kernel taken in the
// background for its next Observe (reconcile.Prefetcher), so that the
// kernel's dumps overlap with the caller's work (parsing and compiling a
// spec, or another driver's observation) instead of following it.
//
// A read is used at most once: the next Observe takes it, and every later
// Observe reads afresh. A write discards a read no Observe took, since it
// predates the write; so does Close. A read that failed is not used: the
// Observe reads afresh and reports its own error.
package prefetch

import (
	"log/slog"
	"sync"
)

// Slot holds at most one read being taken. The zero value is empty. It is
// safe for concurrent use.
type Slot[T any] struct {
	mu sync.Mutex
	r  *read[T]
}

// read is one read in the background.
type read[T any] struct {
	done chan struct{}
	v    T
	err  error
}

// Start runs fn in a goroutine, for the next Take, unless a read is
// pending already.
func (s *Slot[T]) Start(fn func() (T, error)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.r != nil {
		return
	}
	r := &read[T]{done: make(chan struct{})}
	s.r = r
	go func() {
		defer close(r.done)
		r.v, r.err = fn()
	}()
}

// Take returns what the pending read read, waiting for it to end, and
// empties the slot. It reports false if no read was pending or it failed
// (which it logs at Debug on log).
func (s *Slot[T]) Take(log *slog.Logger) (T, bool) {
	s.mu.Lock()
	r := s.r
	s.r = nil
	s.mu.Unlock()
	var zero T
	if r == nil {
		return zero, false
	}
	<-r.done
	if r.err != nil {
		log.Debug("prefetch failed; reading again", "err", r.err)
		return zero, false
	}
	return r.v, true
}

// Drop discards a read no Observe took, after waiting for it to end (it
// uses the driver's sockets).
func (s *Slot[T]) Drop(log *slog.Logger) { s.Take(log) }

// Wait waits for the pending read to end, leaving it for Take, and
// reports whether there was one.
func (s *Slot[T]) Wait() bool {
	s.mu.Lock()
	r := s.r
	s.mu.Unlock()
	if r == nil {
		return false
	}
	<-r.done
	return true
}
