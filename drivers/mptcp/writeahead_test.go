package mptcp

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/braid-router/braid/drivers/record"
	"github.com/braid-router/braid/drivers/record/recordtest"
	"github.com/braid-router/braid/internal/crashtest"
	"github.com/braid-router/braid/reconcile/plan"
)

// eightWant is the kernel's maximum of endpoints, four on each link, and
// the limits.
func eightWant() []plan.Resource {
	want := resources(Limits{Subflows: 8, AddAddrAccepted: 8})
	for i := 1; i <= 4; i++ {
		want = append(want, ep(fmt.Sprintf("10.10%d.0.2", i), "w1", FlagSubflow), ep(fmt.Sprintf("fd00:10%d::2", i), "w2", FlagSubflow))
	}
	return want
}

// applyBatch plans want and applies the plan with ApplyBatch.
func (r *rig) applyBatch(want []plan.Resource) []plan.Change {
	r.t.Helper()
	changes, _ := r.plan(want)
	if n, err := r.d.ApplyBatch(context.Background(), changes); err != nil || n != len(changes) {
		r.t.Fatalf("apply batch: %d of %d: %v", n, len(changes), err)
	}
	return changes
}

// recordedKeys lists the record's entries as "KIND KEY", sorted.
func recordedKeys(rec *record.Record) []string {
	return recordtest.Entries(rec, KindEndpoint, KindLimits)
}

// putBack checks that deleting everything put the namespace back as it
// was (no endpoints, the preset limits) and emptied the record.
func (r *rig) putBack(preset string) {
	r.t.Helper()
	if got := r.endpoints(); len(got) != 0 {
		r.t.Errorf("endpoints after the deletes: %+v", got)
	}
	if got := r.limits(); got != preset {
		r.t.Errorf("limits after the deletes: %q, want %q", got, preset)
	}
	if !r.rec.Empty() {
		r.t.Errorf("record after the deletes: %q", recordedKeys(r.rec))
	}
}

// The write-ahead of eight endpoints and the limits is one write of the
// record, with the ids the endpoints then get; putting them back is one
// more.
func TestApplyBatchWritesTheRecordOnceEachWay(t *testing.T) {
	r := newRig(t)
	preset := r.limits()
	want := eightWant()
	w := r.rec.Writes()
	var changes []plan.Change
	if n := r.wrote(func() { changes = r.applyBatch(want) }); n != 9 {
		t.Errorf("%d kernel writes, want 9", n)
	}
	if len(changes) != 9 {
		t.Fatalf("%d changes, want 9", len(changes))
	}
	if n := r.rec.Writes() - w; n != 1 {
		t.Errorf("the batch wrote the record %d times, want once, ahead of its writes", n)
	}
	var ids []int
	for _, e := range r.endpoints() {
		if id := r.recordedID(e.Address); id != e.ID {
			t.Errorf("%s: ip shows id %d, the record holds %d", e.Address, e.ID, id)
		}
		ids = append(ids, e.ID)
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []int{1, 2, 3, 4, 5, 6, 7, 8}) {
		t.Errorf("ids %v, want the lowest free ones, 1 to 8", ids)
	}
	r.settled(want)

	w = r.rec.Writes()
	changes, _ = r.plan(nil)
	if n, err := r.d.ApplyBatch(context.Background(), changes); err != nil || n != 9 {
		t.Fatalf("delete batch: %d of 9: %v", n, err)
	}
	if n := r.rec.Writes() - w; n != 1 {
		t.Errorf("the batch of deletes wrote the record %d times, want once, after it", n)
	}
	r.putBack(preset)
}

// A batch stopped by a refusal keeps the entries of what took effect only,
// as one change at a time would.
func TestApplyBatchRefusedForgetsWhatItWroteAhead(t *testing.T) {
	r := newRig(t)
	for i := 1; i <= MaxEndpoints-2; i++ {
		r.ip("mptcp", "endpoint", "add", fmt.Sprintf("192.0.2.%d", i), "dev", "w1", "signal")
	}
	changes := []plan.Change{
		planCreate(ep("10.101.0.2", "w1", FlagSubflow)),
		planCreate(ep("10.102.0.2", "w2", FlagSubflow)),
		planCreate(ep("10.103.0.2", "w2", FlagSubflow)), // the ninth endpoint
		planCreate(ep("10.104.0.2", "w2", FlagSubflow)),
		{Action: plan.Update, Before: Limits{Subflows: 2}, After: Limits{Subflows: 4, AddAddrAccepted: 4}},
	}
	// As the engine does: observe (the driver learns the ids in use), then
	// apply.
	var desired []plan.Resource
	for _, c := range changes {
		desired = append(desired, c.After)
	}
	r.observe(desired)
	w := r.rec.Writes()
	n, err := r.d.ApplyBatch(context.Background(), changes)
	if n != 2 || err == nil || !strings.Contains(err.Error(), "mptcp.endpoint[10.103.0.2]") {
		t.Fatalf("applied %d, error %v; want 2 and the refusal of the ninth endpoint", n, err)
	}
	want := []string{KindEndpoint + " 10.101.0.2", KindEndpoint + " 10.102.0.2"}
	if got := recordedKeys(r.rec); !slices.Equal(got, want) {
		t.Errorf("recorded %q, want %q", got, want)
	}
	if n := r.rec.Writes() - w; n != 2 {
		t.Errorf("%d writes of the record, want 2: ahead of the batch, and after it", n)
	}
	if again, err := record.Open(r.dir); err != nil || !slices.Equal(recordedKeys(again), want) {
		t.Errorf("on disk %q (%v), want %q", recordedKeys(again), err, want)
	}
	if got := r.limits(); got != "add_addr_accepted 0 subflows 2" {
		t.Errorf("limits after the refusal: %q", got)
	}
}

// TestApplyBatchCrashAtFirstWrite ends a process at the first kernel write
// of a batch (in a child process: the failpoint exits): the entries of the
// whole batch are on disk by then, and converging and deleting afterwards
// restores what the batch found.
func TestApplyBatchCrashAtFirstWrite(t *testing.T) {
	if c := crashtest.Child(); c != nil {
		rec, err := record.Open(c.Dir)
		c.Check(err)
		c.ApplyBatch(New(Options{Record: rec, Writes: c.Writes}), eightWant())
	}
	r := newRig(t)
	preset := r.limits()
	crashtest.Run(t, r.ns, r.dir, 1)
	r.open()
	if got := recordedKeys(r.rec); len(got) != 9 {
		t.Fatalf("on disk after a crash at the first write: %q, want the 8 endpoints and the limits", got)
	}
	want := eightWant()
	r.applyBatch(want)
	r.settled(want)
	r.applyBatch(nil)
	r.putBack(preset)
}
