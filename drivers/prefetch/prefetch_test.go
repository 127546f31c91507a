package prefetch

import (
	"errors"
	"log/slog"
	"testing"
)

var discard = slog.New(slog.DiscardHandler)

// A read is taken once; a second Start while one is pending does nothing;
// a failed read is not used.
func TestSlot(t *testing.T) {
	var s Slot[int]
	if s.Wait() {
		t.Fatal("an empty slot has a read pending")
	}
	if _, ok := s.Take(discard); ok {
		t.Fatal("an empty slot gave a read")
	}
	release := make(chan struct{})
	s.Start(func() (int, error) { <-release; return 1, nil })
	s.Start(func() (int, error) { return 2, nil }) // pending: nothing
	close(release)
	if !s.Wait() {
		t.Fatal("no read pending")
	}
	if v, ok := s.Take(discard); !ok || v != 1 {
		t.Fatalf("Take = %d %v, want the first read, 1", v, ok)
	}
	if _, ok := s.Take(discard); ok {
		t.Fatal("a read was used twice")
	}
	s.Start(func() (int, error) { return 3, errors.New("no socket") })
	if v, ok := s.Take(discard); ok {
		t.Fatalf("a failed read was used: %d", v)
	}
	s.Start(func() (int, error) { return 4, nil })
	s.Drop(discard)
	if s.Wait() {
		t.Fatal("a dropped read is still pending")
	}
}
