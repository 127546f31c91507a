package mptcp

import (
	"context"
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/braid-router/braid/drivers/failpoint"
	"github.com/braid-router/braid/drivers/record"
	"github.com/braid-router/braid/internal/nstest"
	"github.com/braid-router/braid/internal/plantest"
	"github.com/braid-router/braid/reconcile/plan"
)

// rig is a driver in a fresh namespace with two veths (w1, w2, up), a
// persisted record and a write counter.
type rig struct {
	t      *testing.T
	ns     string
	d      *Driver
	rec    *record.Record
	dir    string
	writes *failpoint.Counter
}

func newRig(t *testing.T) *rig {
	t.Helper()
	ns := nstest.New(t)
	r := &rig{t: t, ns: ns, dir: t.TempDir(), writes: &failpoint.Counter{}}
	for _, l := range []string{"w1", "w2"} {
		r.ip("link", "add", l, "type", "veth", "peer", "name", l+"p")
		r.ip("link", "set", l, "up")
	}
	r.open()
	return r
}

// open (re)starts the driver on the rig's record directory, as a new braid
// process would.
func (r *rig) open() {
	r.t.Helper()
	rec, err := record.Open(r.dir)
	if err != nil {
		r.t.Fatal(err)
	}
	r.rec = rec
	r.d = r.newDriver(rec)
}

// newDriver opens a driver in the rig's namespace: its sockets stay there
// whichever thread uses them later.
func (r *rig) newDriver(rec *record.Record) *Driver {
	r.t.Helper()
	var d *Driver
	nstest.Do(r.t, r.ns, func() error {
		d = New(Options{Record: rec, Writes: r.writes, Log: nstest.Logger(r.t)})
		return nil
	})
	r.t.Cleanup(func() { d.Close() })
	return d
}

// ip runs ip(8) in the rig's namespace and returns its output.
func (r *rig) ip(args ...string) string {
	r.t.Helper()
	return nstest.Run(r.t, "ip", append([]string{"-n", r.ns}, args...)...)
}

// ipEndpoint is one endpoint of `ip -j mptcp endpoint show`.
type ipEndpoint struct {
	Address  string `json:"address"`
	ID       int    `json:"id"`
	Port     int    `json:"port"`
	Dev      string `json:"dev"`
	Signal   bool   `json:"signal"`
	Subflow  bool   `json:"subflow"`
	Backup   bool   `json:"backup"`
	Fullmesh bool   `json:"fullmesh"`
	Implicit bool   `json:"implicit"`
}

// line renders an endpoint as the driver's resources do: "ADDR dev=X
// flags=...".
func (e ipEndpoint) line() string {
	var f []string
	for _, x := range []struct {
		on   bool
		name string
	}{{e.Signal, "signal"}, {e.Subflow, "subflow"}, {e.Backup, "backup"}, {e.Fullmesh, "fullmesh"}, {e.Implicit, "implicit"}} {
		if x.on {
			f = append(f, x.name)
		}
	}
	return e.Address + " dev=" + e.Dev + " flags=" + strings.Join(f, " ")
}

// endpoints is `ip -j mptcp endpoint show`, the independent oracle.
func (r *rig) endpoints() []ipEndpoint {
	r.t.Helper()
	var eps []ipEndpoint
	out := r.ip("-j", "mptcp", "endpoint", "show")
	if strings.TrimSpace(out) == "" {
		return nil
	}
	if err := json.Unmarshal([]byte(out), &eps); err != nil {
		r.t.Fatalf("decode %q: %v", out, err)
	}
	slices.SortFunc(eps, func(a, b ipEndpoint) int { return strings.Compare(a.Address, b.Address) })
	return eps
}

// endpointLines is endpoints as sorted "ADDR dev=X flags=..." lines.
func (r *rig) endpointLines() []string {
	r.t.Helper()
	var out []string
	for _, e := range r.endpoints() {
		out = append(out, e.line())
	}
	return out
}

// limits is `ip mptcp limits show`, whitespace normalised.
func (r *rig) limits() string {
	r.t.Helper()
	return strings.Join(strings.Fields(r.ip("mptcp", "limits", "show")), " ")
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

// recordedID is the id the record holds for an address, or -1.
func (r *rig) recordedID(addr string) int {
	r.t.Helper()
	var e endpointRecord
	ok, err := r.rec.Get(KindEndpoint, addr, &e)
	if err != nil {
		r.t.Fatal(err)
	}
	if !ok {
		return -1
	}
	return int(e.ID)
}

func wantActions(t *testing.T, got []plan.Change, want ...string) {
	t.Helper()
	if g := plantest.Actions(got); !slices.Equal(g, want) {
		t.Fatalf("changes:\n got  %q\n want %q", g, want)
	}
}

func wantLines(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s:\n got  %q\n want %q", what, got, want)
	}
}

func ep(addr, dev string, flags Flags) Endpoint {
	return Endpoint{Addr: netip.MustParseAddr(addr), Dev: dev, Flags: flags}
}

func resources(rs ...plan.Resource) []plan.Resource { return rs }

func planCreate(r plan.Resource) plan.Change { return plan.Change{Action: plan.Create, After: r} }
func planDelete(r plan.Resource) plan.Change { return plan.Change{Action: plan.Delete, Before: r} }
