package nftables

import (
	"context"
	"testing"

	"github.com/braid-router/braid/internal/plantest"
	"github.com/braid-router/braid/reconcile/plan"
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
	want := sample(t)
	r.converge(want)

	r.d.Prefetch(context.Background())
	r.pending()
	// A change after the table was read: the next Observe, which uses that
	// read, does not see it (as a plan does not see what changes after
	// its reads); the one after reads afresh and does.
	r.nft("delete", "chain", "inet", TableName, ChainForward)
	if changes := r.plan(want); len(changes) != 0 {
		t.Fatalf("the prefetched read was not used:%s", plantest.Describe(changes))
	}
	if changes := r.plan(want); len(changes) == 0 {
		t.Fatal("the prefetched read was used twice")
	}
}

func TestPrefetchIsDroppedByWrites(t *testing.T) {
	r := newRig(t)
	want := sample(t)
	r.d.Prefetch(context.Background())
	r.pending()
	changes, _ := plan.Diff(want, nil)
	if n, err := r.d.ApplyBatch(context.Background(), changes); err != nil || n != len(changes) {
		t.Fatalf("%d of %d: %v", n, len(changes), err)
	}
	// The read predates the writes: the next Observe reads afresh.
	r.settled(want)
}

func TestPrefetchClosed(t *testing.T) {
	r := newRig(t)
	r.d.Close()
	r.d.Prefetch(context.Background())
	if r.d.pre.Wait() {
		t.Fatal("prefetch on a closed driver")
	}
}
