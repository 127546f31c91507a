package netlink

import (
	"slices"
	"strings"
	"testing"

	"github.com/braid-router/braid/drivers/record"
	"github.com/braid-router/braid/drivers/record/recordtest"
	"github.com/braid-router/braid/internal/crashtest"
	"github.com/braid-router/braid/internal/plantest"
	"github.com/braid-router/braid/reconcile/plan"
)

// recordState is what a batch records: links, sysctls and addresses.
func recordState() []plan.Resource {
	return resources[plan.Resource](
		Link{Name: "wan0", Up: true, MTU: 1400},
		Sysctl{Name: "net.ipv4.ip_forward", Value: "1"},
		Sysctl{Name: "net.ipv4.conf.wan0.rp_filter", Value: "2"},
		Addr{Link: "wan0", Prefix: pfx("10.9.0.2/24")},
		Addr{Link: "wan0", Prefix: pfx("fd00:9::2/64")},
	)
}

// recorded lists the record's entries as "KIND KEY", sorted.
func recorded(rec *record.Record) []string {
	return recordtest.Entries(rec, KindLink, KindSysctl, KindAddress)
}

// recordStateSysctls is the values of the sysctls recordState sets.
func (r *rig) recordStateSysctls() string {
	return r.sysctl("net.ipv4.ip_forward") + r.sysctl("net.ipv4.conf.wan0.rp_filter")
}

// putBack checks that deleting recordState put wan0 and its sysctls back
// as they were (sysctls, from recordStateSysctls) and emptied the record.
func (r *rig) putBack(sysctls string) {
	r.t.Helper()
	if after := r.recordStateSysctls(); after != sysctls {
		r.t.Errorf("sysctls %q after the deletes, want %q", after, sysctls)
	}
	if l := r.link("wan0"); l.up() || l.MTU != 1500 {
		r.t.Errorf("wan0 after the deletes: %+v", l)
	}
	if got := r.ip("-o", "addr", "show", "dev", "wan0", "scope", "global"); got != "" {
		r.t.Errorf("addresses left: %s", got)
	}
	if !r.rec.Empty() {
		r.t.Errorf("record after the deletes: %q", recorded(r.rec))
	}
}

var recordStateEntries = []string{
	"address wan0 10.9.0.2/24", "address wan0 fd00:9::2/64",
	"link wan0",
	"sysctl net.ipv4.conf.wan0.rp_filter", "sysctl net.ipv4.ip_forward",
}

func TestApplyBatchWritesTheRecordOnceEachWay(t *testing.T) {
	bothWays(t, func(t *testing.T, r *rig) {
		r.veth("wan0", "wan0p")
		before := r.recordStateSysctls()
		want := recordState()
		w := r.rec.Writes()
		changes := r.convergeBatch(want)
		if len(changes) != 5 {
			t.Fatalf("%d changes: %s", len(changes), strings.Join(plantest.SortedActions(changes), " "))
		}
		if n := r.rec.Writes() - w; n != 1 {
			t.Errorf("the batch wrote the record %d times, want once, ahead of its writes", n)
		}
		if got := recorded(r.rec); !slices.Equal(got, recordStateEntries) {
			t.Errorf("recorded %q, want %q", got, recordStateEntries)
		}
		r.settled(want)

		// Putting everything back: one write after the batch, for the
		// removals.
		w = r.rec.Writes()
		r.convergeBatch(nil)
		if n := r.rec.Writes() - w; n != 1 {
			t.Errorf("the batch of deletes wrote the record %d times, want once, after it", n)
		}
		r.putBack(before)
	})
}

// A batch that stops at a refused change keeps only the entries of what it
// did, as one change at a time would.
func TestApplyBatchRefusedForgetsWhatItWroteAhead(t *testing.T) {
	r := newRig(t)
	r.veth("wan0", "wan0p")
	// The kernel refuses IPv6 addresses on a link with IPv6 disabled.
	r.setSysctl("net.ipv6.conf.wan0.disable_ipv6", "1")
	v4, v6, later := Addr{Link: "wan0", Prefix: pfx("10.9.0.2/24")}, Addr{Link: "wan0", Prefix: pfx("fd00:9::2/64")}, Addr{Link: "wan0", Prefix: pfx("10.9.1.2/24")}
	changes := []plan.Change{
		planCreate(Link{Name: "wan0", Up: true}),
		planCreate(v4),
		planCreate(v6),
		planCreate(Sysctl{Name: "net.ipv4.ip_forward", Value: "1"}),
		planCreate(later),
	}
	w := r.rec.Writes()
	n, err, _ := r.applyBatch(changes)
	if n != 2 || err == nil || !strings.Contains(err.Error(), v6.Address()) {
		t.Fatalf("applied %d, error %v; want 2 and the refusal of %s", n, err, v6.Address())
	}
	if got, want := recorded(r.rec), []string{"address " + v4.recordKey(), "link wan0"}; !slices.Equal(got, want) {
		t.Errorf("recorded %q, want %q: what took effect, nothing for the refused change or those after it", got, want)
	}
	if n := r.rec.Writes() - w; n != 2 {
		t.Errorf("%d writes of the record, want 2: ahead of the batch, and after it", n)
	}
	again, err := record.Open(r.dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := recorded(again), recorded(r.rec); !slices.Equal(got, want) {
		t.Errorf("on disk %q, in memory %q", got, want)
	}
	r.rollback(changes[:n])
	if !r.rec.Empty() {
		t.Errorf("record after the rollback: %q", recorded(r.rec))
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
		d, err := New(Options{Record: rec, Writes: c.Writes})
		c.Check(err)
		c.ApplyBatch(d, recordState())
	}
	r := newRig(t)
	r.veth("wan0", "wan0p")
	pristine := r.recordStateSysctls()
	crashtest.Run(t, r.ns, r.dir, 1)
	onDisk, err := record.Open(r.dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := recorded(onDisk); !slices.Equal(got, recordStateEntries) {
		t.Fatalf("on disk after a crash at the first write: %q, want every entry of the batch %q", got, recordStateEntries)
	}
	// The rig's driver reads the record the child left.
	rec, err := record.Open(r.dir)
	if err != nil {
		t.Fatal(err)
	}
	r.rec = rec
	r.d.rec = rec
	r.convergeBatch(recordState())
	r.settled(recordState())
	r.convergeBatch(nil)
	r.putBack(pristine)
}
