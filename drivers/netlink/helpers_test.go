package netlink

import (
	"context"
	"encoding/json"
	"net/netip"
	"testing"

	vnl "github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/braid-router/braid/drivers/failpoint"
	"github.com/braid-router/braid/drivers/record"
	"github.com/braid-router/braid/internal/nstest"
	"github.com/braid-router/braid/internal/plantest"
	"github.com/braid-router/braid/reconcile/plan"
)

// inNS creates a throwaway namespace and moves the test's goroutine, locked
// to its OS thread, into it for the rest of the test (nstest.Enter), so that
// the driver's rtnetlink socket and its /proc/sys writes land there.
func inNS(t *testing.T) string {
	t.Helper()
	ns := nstest.New(t)
	nstest.Enter(t, ns)
	return ns
}

// rig is a driver in a test namespace with a persisted record and a write
// counter.
type rig struct {
	t      *testing.T
	ns     string
	d      *Driver
	rec    *record.Record
	writes *failpoint.Counter
	dir    string
}

func newRig(t *testing.T) *rig { return newRigWith(t, false) }

// bothWays runs a test with a driver that opened its own sockets (route
// writes over its raw conn) and with one given a netlink.Handle (all
// through the library).
func bothWays(t *testing.T, fn func(t *testing.T, r *rig)) {
	t.Run("own-socket", func(t *testing.T) { fn(t, newRigWith(t, false)) })
	t.Run("given-handle", func(t *testing.T) { fn(t, newRigWith(t, true)) })
}

func newRigWith(t *testing.T, givenHandle bool) *rig {
	t.Helper()
	ns := inNS(t)
	dir := t.TempDir()
	rec, err := record.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	writes := &failpoint.Counter{}
	opts := Options{Record: rec, Writes: writes, Log: nstest.Logger(t)}
	if givenHandle {
		h, err := vnl.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(h.Close)
		opts.Handle = h
	}
	d, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if (d.raw == nil) != givenHandle {
		t.Fatalf("raw conn %v with a given handle %v", d.raw != nil, givenHandle)
	}
	t.Cleanup(func() { d.Close() })
	return &rig{t: t, ns: ns, d: d, rec: rec, writes: writes, dir: dir}
}

// ip runs ip(8) in the rig's namespace.
func (r *rig) ip(args ...string) string {
	r.t.Helper()
	return nstest.In(r.t, r.ns, "ip", args...)
}

// veth creates a veth pair in the namespace, both ends down.
func (r *rig) veth(a, b string) {
	r.t.Helper()
	r.ip("link", "add", "name", a, "type", "veth", "peer", "name", b)
}

func (r *rig) observe(want []plan.Resource) []plan.Observed {
	r.t.Helper()
	return plantest.Observe(r.t, r.d, want)
}

// plan observes and diffs.
func (r *rig) plan(want []plan.Resource) ([]plan.Change, []plan.Conflict) {
	r.t.Helper()
	return plantest.Plan(r.t, r.d, want)
}

// converge plans and applies every change, and returns the changes.
func (r *rig) converge(want []plan.Resource) []plan.Change {
	r.t.Helper()
	return plantest.Converge(r.t, r.d, want)
}

// settled checks that a second plan is empty and that converging again
// writes nothing.
func (r *rig) settled(want []plan.Resource) {
	r.t.Helper()
	plantest.Settled(r.t, r.d, r.writes, want)
}

// wrote runs fn and returns the number of kernel writes it counted.
func (r *rig) wrote(fn func()) int64 { return plantest.Writes(r.writes, fn) }

func (r *rig) apply(c plan.Change) error {
	return r.d.Apply(context.Background(), c)
}

func resources[T plan.Resource](rs ...T) []plan.Resource {
	out := make([]plan.Resource, len(rs))
	for i, r := range rs {
		out[i] = r
	}
	return out
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func ip(s string) netip.Addr    { return netip.MustParseAddr(s) }

// jsonOut decodes ip -j output.
func jsonOut[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("decode %q: %v", s, err)
	}
	return v
}

func planCreate(r plan.Resource) plan.Change { return plan.Change{Action: plan.Create, After: r} }
func planDelete(r plan.Resource) plan.Change { return plan.Change{Action: plan.Delete, Before: r} }
func planUpdate(before, after plan.Resource) plan.Change {
	return plan.Change{Action: plan.Update, Before: before, After: after}
}
