package netlink

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/braid-router/braid/drivers/record"
	"github.com/braid-router/braid/internal/crashtest"
	"github.com/braid-router/braid/internal/linediff"
	"github.com/braid-router/braid/internal/plantest"
	"github.com/braid-router/braid/reconcile/plan"
)

// batchState is n steering routes, alternately IPv4 and IPv6, via wan0
// (see uplink), then m source rules, alternately IPv4 and IPv6: with n
// and m large enough, a run that ApplyBatch splits into two lanes.
func batchState(n, m int) []plan.Resource {
	var out []plan.Resource
	for i := range n {
		if i%2 == 0 {
			out = append(out, Route{Table: TableSteer, Dst: netip.PrefixFrom(netip.AddrFrom4([4]byte{100, 64, byte(i >> 8), byte(i)}), 32),
				Gateway: ip("10.0.0.254"), Link: "wan0"})
		} else {
			out = append(out, Route{Table: TableSteer, Dst: netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(i >> 8), 15: byte(i)}), 128),
				Gateway: ip("fd00::fe"), Link: "wan0"})
		}
	}
	for i := range m {
		if i%2 == 0 {
			out = append(out, Rule{Priority: PrioFrom, From: netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 168, byte(i >> 8), byte(i)}), 32),
				Table: TableSteer, SuppressPrefixlen: -1})
		} else {
			out = append(out, Rule{Priority: PrioFrom, From: netip.PrefixFrom(netip.AddrFrom16([16]byte{0xfd, 0x10, 14: byte(i >> 8), 15: byte(i)}), 128),
				Table: TableSteer, SuppressPrefixlen: -1})
		}
	}
	return out
}

// braidState is braid's routes and rules as ip(8) shows them.
func (r *rig) braidState() string {
	r.t.Helper()
	var rules []string
	for _, l := range strings.Split(r.ip("-4", "rule", "show")+r.ip("-6", "rule", "show"), "\n") {
		if strings.HasSuffix(l, " proto 98") { // ip 6.1 does not filter rules by protocol
			rules = append(rules, l+"\n")
		}
	}
	return r.braidRoutes() + strings.Join(rules, "")
}

// applyBatch runs ApplyBatch and returns how many took effect, the error
// and the writes it counted.
func (r *rig) applyBatch(changes []plan.Change) (int, error, int64) {
	r.t.Helper()
	var n int
	var err error
	w := r.wrote(func() { n, err = r.d.ApplyBatch(context.Background(), changes) })
	return n, err, w
}

// convergeBatch plans and applies the plan with ApplyBatch.
func (r *rig) convergeBatch(want []plan.Resource) []plan.Change {
	r.t.Helper()
	changes, _ := r.plan(want)
	if n, err, _ := r.applyBatch(changes); err != nil || n != len(changes) {
		r.t.Fatalf("apply batch: %d of %d: %v", n, len(changes), err)
	}
	return changes
}

// rollback undoes applied changes in reverse order with ApplyBatch, as the
// engine does.
func (r *rig) rollback(applied []plan.Change) {
	r.t.Helper()
	inverse := make([]plan.Change, len(applied))
	for i, c := range applied {
		inverse[len(applied)-1-i] = c.Inverse()
	}
	if n, err, _ := r.applyBatch(inverse); err != nil || n != len(inverse) {
		r.t.Fatalf("rollback: %d of %d: %v", n, len(inverse), err)
	}
}

func TestApplyBatchConverges(t *testing.T) { bothWays(t, testApplyBatchConverges) }

func testApplyBatchConverges(t *testing.T, r *rig) {
	r.uplink()
	r.veth("wan1", "wan1p")
	// An address in the middle of the run: pipelined runs stop at it.
	state := batchState(600, 60)
	state = append(state[:300:300], append([]plan.Resource{Addr{Link: "wan1", Prefix: pfx("10.9.0.1/24")}, Link{Name: "wan1", Up: true}}, state[300:]...)...)
	changes, _ := r.plan(state)
	if len(changes) != len(state) {
		t.Fatalf("%d changes for %d objects", len(changes), len(state))
	}
	n, err, w := r.applyBatch(changes)
	if err != nil || n != len(changes) || w != int64(len(changes)) {
		t.Fatalf("applied %d of %d with %d writes: %v", n, len(changes), w, err)
	}
	r.settled(state)
	if got := strings.Count(r.braidState(), "\n"); got != 660 {
		t.Fatalf("%d routes and rules in the kernel, want 660", got)
	}

	// Updates and deletes: every third route moves to another gateway,
	// the last 100 routes and the last 10 rules go.
	next := append([]plan.Resource(nil), state[:len(state)-10]...)
	var routes []plan.Resource
	for i, res := range next {
		rt, ok := res.(Route)
		if !ok {
			continue
		}
		if i%3 == 0 {
			if rt.Dst.Addr().Is4() {
				rt.Gateway = ip("10.0.0.253")
			} else {
				rt.Gateway = ip("fd00::fd")
			}
			next[i] = rt
		}
		routes = append(routes, next[i])
	}
	drop := map[plan.Resource]bool{}
	for _, rt := range routes[len(routes)-100:] {
		drop[rt] = true
	}
	var kept []plan.Resource
	for _, res := range next {
		if !drop[res] {
			kept = append(kept, res)
		}
	}
	changes, _ = r.plan(kept)
	n, err, w = r.applyBatch(changes)
	if err != nil || n != len(changes) || w != int64(len(changes)) {
		t.Fatalf("applied %d of %d with %d writes: %v", n, len(changes), w, err)
	}
	r.settled(kept)

	// And everything goes.
	changes, _ = r.plan(nil)
	if n, err, _ := r.applyBatch(changes); err != nil || n != len(changes) {
		t.Fatalf("delete all: %d of %d: %v", n, len(changes), err)
	}
	if got := r.braidState(); got != "" {
		t.Fatalf("left after deleting everything:\n%s", got)
	}
}

// TestApplyBatchRefusal puts a change the kernel refuses (a route through
// an unreachable gateway) in the middle of a run, at several places: the
// run stops there with exact accounting, the later requests that the
// kernel made anyway are undone, a new plan is exactly the rest, and the
// engine's rollback restores the starting state exactly.
func TestApplyBatchRefusal(t *testing.T) {
	for _, tc := range []struct {
		name   string
		routes int // in the run
		at     int // index of the refused change in the run
		v6     bool
	}{
		{"first", 40, 0, false},
		{"one-lane-middle", 40, 17, false},
		{"one-lane-second-batch", 150, 64 + 30, true},
		{"last", 40, -1, true},
		{"two-lanes-v4", 700, 301, false},
		{"two-lanes-v6", 700, 420, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bothWays(t, func(t *testing.T, r *rig) { testApplyBatchRefusal(t, r, tc.routes, tc.at, tc.v6) })
		})
	}
}

func testApplyBatchRefusal(t *testing.T, r *rig, routes, at int, v6 bool) {
	r.uplink()
	// A starting state of braid's own: the run updates and deletes some.
	base := batchState(routes, 20)
	r.convergeBatch(base)
	before := r.braidState()

	want := batchState(routes+routes/2, 20)[routes/4:] // creates, and deletes of the first quarter
	for i := range want {
		if rt, ok := want[i].(Route); ok && i%5 == 0 {
			rt.Src = map[bool]netip.Addr{false: ip("10.0.0.1"), true: ip("fd00::1")}[rt.Dst.Addr().Is6()] // updates
			want[i] = rt
		}
	}
	changes, _ := r.plan(want)
	if at < 0 {
		at = len(changes)
	}
	if len(changes) < at {
		t.Fatalf("only %d changes", len(changes))
	}
	// The refused one: a create through a gateway no link reaches.
	bad := Route{Table: TableSteer, Dst: pfx("198.18.0.0/24"), Gateway: ip("192.0.2.1"), Link: "wan0"}
	if v6 {
		bad = Route{Table: TableSteer, Dst: pfx("2001:db8:dead::/48"), Gateway: ip("2001:db8:ffff::1"), Link: "wan0"}
	}
	changes = append(changes[:at:at], append([]plan.Change{planCreate(bad)}, changes[at:]...)...)

	n, err, w := r.applyBatch(changes)
	if n != at || err == nil || !strings.Contains(err.Error(), bad.Address()) {
		t.Fatalf("applied %d, want %d; error %v", n, at, err)
	}
	if !errors.Is(err, unix.ENETUNREACH) && !errors.Is(err, unix.EHOSTUNREACH) {
		t.Errorf("error %v does not wrap the kernel's", err)
	}
	// Every write of the first n counts once; each later one that took
	// counts twice (made, then undone).
	if w < int64(n) || (w-int64(n))%2 != 0 {
		t.Errorf("%d writes for %d changes that took", w, n)
	}
	switch {
	case r.d.raw == nil:
		if w != int64(n) {
			t.Errorf("one by one, %d writes for %d changes that took", w, n)
		}
	case len(changes) < minLanes:
		// One lane: the requests after the refused one in its batch of
		// maxBatch took, and were undone.
		end := min((at/maxBatch+1)*maxBatch, len(changes))
		if want := int64(at + 2*(end-at-1)); w != want {
			t.Errorf("%d writes, want %d: %d that took, and the %d after the refused one in its batch, made and undone", w, want, at, end-at-1)
		}
	}
	// Exactly the first n took: the plan is the rest, in order.
	rest, _ := r.plan(append(want, bad))
	plantest.WantActions(t, rest, plantest.Actions(changes[n:])...)
	// The engine's rollback restores the start exactly.
	r.rollback(changes[:n])
	if after := r.braidState(); after != before {
		t.Fatalf("rollback did not restore the start:\n%s", linediff.Diff(before, after))
	}
}

// TestApplyBatchAlreadySo: EEXIST from braid's own equal object and
// ENOENT on a delete are "already so" inside a batch (no write), EEXIST
// from braid's own object that differs brings it in line (one write), and
// EEXIST from a foreign object is a conflict that stops the run there,
// leaving the foreign object alone and nothing after it.
func TestApplyBatchAlreadySo(t *testing.T) { bothWays(t, testApplyBatchAlreadySo) }

func testApplyBatchAlreadySo(t *testing.T, r *rig) {
	r.uplink()
	state := batchState(100, 10)
	r.convergeBatch(state[:50])
	// Braid's own route 10, changed by hand to another gateway.
	r10 := state[10].(Route)
	r.ip("route", "replace", r10.Dst.String(), "via", "10.0.0.253", "dev", "wan0", "table", "7100", "proto", "98")

	var changes []plan.Change
	for _, res := range state {
		changes = append(changes, planCreate(res)) // the first 50 exist already
	}
	gone := Route{Table: TableSteer, Dst: pfx("198.51.100.0/24"), Link: "wan0"}
	goneRule := Rule{Priority: PrioFrom, From: pfx("192.0.2.0/24"), Table: TableSteer, SuppressPrefixlen: -1}
	changes = append(changes, planDelete(gone), planDelete(goneRule))

	n, err, w := r.applyBatch(changes)
	if err != nil || n != len(changes) {
		t.Fatalf("applied %d of %d: %v", n, len(changes), err)
	}
	if want := int64(len(state) - 50 + 1); w != want {
		t.Errorf("%d writes, want %d (the 60 new ones and route 10 brought in line)", w, want)
	}
	r.settled(state)

	// A foreign route in the way of a create in the middle of a run.
	more := batchState(300, 0)[100:]
	foreign := more[50].(Route)
	r.ip("route", "add", foreign.Dst.String(), "via", "10.0.0.254", "dev", "wan0", "table", "7100", "proto", "static")
	before := r.braidState()
	changes = changes[:0]
	for _, res := range more {
		changes = append(changes, planCreate(res))
	}
	n, err, _ = r.applyBatch(changes)
	if n != 50 || !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), foreign.Address()) {
		t.Fatalf("applied %d, want 50; error %v", n, err)
	}
	if got := r.ip("route", "show", "table", "7100", foreign.Dst.String()); !strings.Contains(got, "proto static") {
		t.Fatalf("the foreign route was touched: %q", got)
	}
	r.rollback(changes[:n])
	if after := r.braidState(); after != before {
		t.Fatalf("after the conflict and the rollback:\n%s", linediff.Diff(before, after))
	}
}

// TestApplyBatchCrash ends a process with the failpoint at several writes
// of a pipelined run (in a child process: the failpoint exits): whatever
// the crash left, at least the counted writes, is braid's own, and the
// next converge completes it and writes nothing once converged.
func TestApplyBatchCrash(t *testing.T) {
	if c := crashtest.Child(); c != nil {
		d, err := New(Options{Record: record.Memory(), Writes: c.Writes})
		c.Check(err)
		c.ApplyBatch(d, batchState(600, 60))
	}
	for _, at := range []int{1, 37, 64, 65, 300, 659} {
		t.Run(strconv.Itoa(at), func(t *testing.T) {
			r := newRig(t)
			r.uplink()
			crashtest.Run(t, r.ns, "", at)
			if got := strings.Count(r.braidState(), "\n"); got < at {
				t.Fatalf("%d objects after a crash at write %d", got, at)
			}
			state := batchState(600, 60)
			r.convergeBatch(state)
			r.settled(state)
		})
	}
}

func TestPrefetchIsUsedOnce(t *testing.T) {
	r := newRig(t)
	r.uplink()
	want := resources(testRoutes()...)
	r.convergeBatch(want)

	r.d.Prefetch(context.Background())
	if !r.d.pre.Wait() {
		t.Fatal("no prefetch pending")
	}
	// A change after the snapshot was taken: the next Observe, which uses
	// the snapshot, does not see it (as a plan does not see what changes
	// after its dumps); the one after dumps afresh and does.
	r.ip("route", "del", "198.51.100.0/24", "table", "7100")
	if changes, _ := r.plan(want); len(changes) != 0 {
		t.Fatalf("the prefetched snapshot was not used: %s", plantest.Describe(changes))
	}
	changes, _ := r.plan(want)
	plantest.WantActions(t, changes, "+route[7100 198.51.100.0/24 metric 0]")
}

func TestPrefetchIsDroppedByWrites(t *testing.T) {
	for _, batch := range []bool{false, true} {
		t.Run(fmt.Sprintf("batch=%v", batch), func(t *testing.T) {
			r := newRig(t)
			r.uplink()
			want := resources(testRoutes()...)
			r.d.Prefetch(context.Background())
			changes, _ := plan.Diff(want, nil)
			if batch {
				if n, err, _ := r.applyBatch(changes); err != nil || n != len(changes) {
					t.Fatalf("%d of %d: %v", n, len(changes), err)
				}
			} else {
				for _, c := range changes {
					must(t, r.apply(c))
				}
			}
			// The snapshot predates the writes: the next Observe dumps.
			if changes, _ := r.plan(want); len(changes) != 0 {
				t.Fatalf("a stale snapshot was used: %s", plantest.Describe(changes))
			}
		})
	}
}

func TestPrefetchWithAGivenHandleOrClosed(t *testing.T) {
	r := newRigWith(t, true)
	r.d.Prefetch(context.Background())
	if r.d.pre.Wait() {
		t.Fatal("prefetch with a caller's handle, which the caller may be using")
	}
	r = newRig(t)
	r.d.Prefetch(context.Background())
	r.d.Prefetch(context.Background()) // pending: nothing more
	if err := r.d.Close(); err != nil {
		t.Fatal(err)
	}
	r.d.Prefetch(context.Background())
	if r.d.pre.Wait() {
		t.Fatal("prefetch on a closed driver")
	}
}
