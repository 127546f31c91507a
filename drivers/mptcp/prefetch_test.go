package mptcp

import (
	"context"
	"testing"

	"github.com/braid-router/braid/internal/plantest"
)

// pending waits for the read Prefetch started to end.
func (r *rig) pending() {
	r.t.Helper()
	if !r.d.pre.Wait() {
		r.t.Fatal("no prefetch pending")
	}
}

func TestPrefetchIsUsedOnce(t *testing.T) {
	r := newRig(t)
	want := labWant()
	r.converge(want)

	r.d.Prefetch(context.Background())
	r.pending()
	// A change after the read: the next Observe, which uses the read, does
	// not see it (as a plan does not see what changes after its reads);
	// the one after asks afresh and does.
	r.ip("mptcp", "endpoint", "flush")
	r.ip("mptcp", "limits", "set", "subflows", "1", "add_addr_accepted", "1")
	if changes, _ := r.plan(want); len(changes) != 0 {
		t.Fatalf("the prefetched read was not used: %s", plantest.Describe(changes))
	}
	changes, _ := r.plan(want)
	wantActions(t, changes, "~mptcp.limits", "+mptcp.endpoint[10.101.0.2]", "+mptcp.endpoint[2001:db8:101::2]", "+mptcp.endpoint[10.102.0.2]")
}

func TestPrefetchIsDroppedByWrites(t *testing.T) {
	for _, batch := range []bool{false, true} {
		r := newRig(t)
		want := labWant()
		// As a plan would: the driver learns the ids in use.
		changes, _ := r.plan(want)
		r.d.Prefetch(context.Background())
		r.pending()
		if batch {
			if n, err := r.d.ApplyBatch(context.Background(), changes); err != nil || n != len(changes) {
				t.Fatalf("%d of %d: %v", n, len(changes), err)
			}
		} else {
			for _, c := range changes {
				if err := r.apply(c); err != nil {
					t.Fatal(err)
				}
			}
		}
		// The read predates the writes: the next Observe asks afresh.
		if changes, _ := r.plan(want); len(changes) != 0 {
			t.Fatalf("batch=%v: a stale read was used: %s", batch, plantest.Describe(changes))
		}
	}
}

// Where nothing is desired or recorded, Observe asks nothing, and the
// prefetched read is discarded all the same: the next Observe asks
// afresh.
func TestPrefetchDiscardedWhenNothingIsWanted(t *testing.T) {
	r := newRig(t)
	r.d.Prefetch(context.Background())
	r.pending()
	r.ip("mptcp", "endpoint", "add", "10.101.0.2", "id", "5", "dev", "w1", "subflow")
	if live := r.observe(nil); len(live) != 0 {
		t.Fatalf("nothing wanted, observed %v", live)
	}
	live := r.observe(resources(ep("10.101.0.2", "w1", FlagSubflow)))
	if len(live) != 1 || !live[0].Foreign {
		t.Fatalf("observed %+v, want the foreign endpoint added after the prefetch", live)
	}
}

func TestPrefetchClosed(t *testing.T) {
	r := newRig(t)
	r.d.Close()
	r.d.Prefetch(context.Background())
	if r.d.pre.Wait() {
		t.Fatal("prefetch on a closed driver")
	}
}
