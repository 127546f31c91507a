package mptcp

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/braid-router/braid/drivers/record"
	"github.com/braid-router/braid/internal/plantest"
	"github.com/braid-router/braid/reconcile/plan"
)

// labWant is the lab box's MPTCP state: two uplinks, one of them backup.
func labWant() []plan.Resource {
	return resources(
		Limits{Subflows: 3, AddAddrAccepted: 2},
		ep("10.101.0.2", "w1", FlagSubflow),
		ep("2001:db8:101::2", "w1", FlagSubflow),
		ep("10.102.0.2", "w2", FlagSubflow|FlagBackup),
	)
}

// Limits preset to values other than braid's are recorded, set, and put
// back by a delete; endpoints are what ip(8) shows, with the ids the record
// holds.
func TestApplyThenDestroyRestores(t *testing.T) {
	r := newRig(t)
	// A fresh namespace already has subflows 2; make both differ from
	// braid's and from the default.
	r.ip("mptcp", "limits", "set", "subflows", "5", "add_addr_accepted", "7")
	preset := r.limits()
	if preset != "add_addr_accepted 7 subflows 5" {
		t.Fatalf("preset limits: %q", preset)
	}
	want := labWant()
	changes, conflicts := r.plan(want)
	if len(conflicts) != 0 {
		t.Fatalf("conflicts: %v", conflicts)
	}
	wantActions(t, changes, "~mptcp.limits", "+mptcp.endpoint[10.101.0.2]", "+mptcp.endpoint[2001:db8:101::2]", "+mptcp.endpoint[10.102.0.2]")
	if n := r.wrote(func() { r.converge(want) }); n != 4 {
		t.Errorf("apply made %d writes, want 4", n)
	}
	wantLines(t, "endpoints", r.endpointLines(),
		"10.101.0.2 dev=w1 flags=subflow",
		"10.102.0.2 dev=w2 flags=subflow backup",
		"2001:db8:101::2 dev=w1 flags=subflow")
	if got := r.limits(); got != "add_addr_accepted 2 subflows 3" {
		t.Errorf("limits after apply: %q", got)
	}
	for _, e := range r.endpoints() {
		if id := r.recordedID(e.Address); id != e.ID {
			t.Errorf("%s: ip shows id %d, the record holds %d", e.Address, e.ID, id)
		}
	}
	r.settled(want)

	// A new process (a new driver on the same record) sees the same.
	r.open()
	r.settled(want)

	// Destroy: nothing desired.
	changes, _ = r.plan(nil)
	wantActions(t, changes, "-mptcp.endpoint[10.102.0.2]", "-mptcp.endpoint[2001:db8:101::2]", "-mptcp.endpoint[10.101.0.2]", "-mptcp.limits")
	if n := r.wrote(func() { r.converge(nil) }); n != 4 {
		t.Errorf("destroy made %d writes, want 4", n)
	}
	if got := r.endpoints(); len(got) != 0 {
		t.Errorf("endpoints after destroy: %+v", got)
	}
	if got := r.limits(); got != preset {
		t.Errorf("limits after destroy: %q, want the preset %q", got, preset)
	}
	if !r.rec.Empty() {
		t.Errorf("the record still holds entries after destroy")
	}
	r.settled(nil)
}

// Limits already as braid wants them are not recorded, so a destroy leaves
// them; the limits resource disappears from the plan when no MPTCP uplink
// is left.
func TestLimitsAlreadySoAreNotClaimed(t *testing.T) {
	r := newRig(t)
	r.ip("mptcp", "limits", "set", "subflows", "3", "add_addr_accepted", "2")
	want := labWant()
	r.converge(want)
	if r.rec.Has(KindLimits, limitsKey) {
		t.Errorf("limits braid did not change are recorded")
	}
	r.converge(nil)
	if got := r.limits(); got != "add_addr_accepted 2 subflows 3" {
		t.Errorf("limits after destroy: %q", got)
	}
}

// A foreign endpoint elsewhere survives apply and destroy untouched; one at
// an address braid wants is a conflict, left alone, and everything else is
// applied.
func TestForeignEndpointsSurvive(t *testing.T) {
	r := newRig(t)
	r.ip("mptcp", "endpoint", "add", "192.0.2.9", "id", "1", "dev", "w2", "signal")
	r.ip("mptcp", "endpoint", "add", "10.102.0.2", "id", "40", "dev", "w1", "subflow", "fullmesh")
	r.ip("addr", "add", "10.101.0.2/24", "dev", "w1") // a signal endpoint with a port listens on it
	r.ip("mptcp", "endpoint", "add", "10.101.0.2", "port", "10000", "id", "41", "dev", "w1", "signal")
	before := r.endpointLines()
	want := labWant()
	changes, conflicts := r.plan(want)
	if len(conflicts) != 1 || conflicts[0].Address != "mptcp.endpoint[10.102.0.2]" || conflicts[0].Foreign != "id=40 dev=w1 flags=subflow fullmesh" {
		t.Fatalf("conflicts: %v", conflicts)
	}
	// An endpoint with a port is another identity to the kernel: no
	// conflict for 10.101.0.2.
	wantActions(t, changes, "~mptcp.limits", "+mptcp.endpoint[10.101.0.2]", "+mptcp.endpoint[2001:db8:101::2]")
	r.converge(want)
	// Applying the create anyway is refused, and claims nothing.
	err := r.apply(planCreate(ep("10.102.0.2", "w2", FlagSubflow|FlagBackup)))
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "mptcp.endpoint[10.102.0.2]") {
		t.Errorf("create over a foreign endpoint: %v", err)
	}
	if id := r.recordedID("10.102.0.2"); id != -1 {
		t.Errorf("the refused create left a record entry (id %d)", id)
	}
	after := r.endpointLines()
	for _, l := range before {
		if !strings.Contains(strings.Join(after, "\n"), l) {
			t.Errorf("apply changed or removed foreign %q:\n%s", l, strings.Join(after, "\n"))
		}
	}
	// The ids braid chose avoid the foreign ones.
	for _, e := range r.endpoints() {
		if e.Port == 0 && e.Address == "10.101.0.2" && (e.ID == 1 || e.ID == 40 || e.ID == 41) {
			t.Errorf("braid's endpoint took a foreign id: %+v", e)
		}
	}
	r.converge(nil)
	wantLines(t, "endpoints after destroy", r.endpointLines(), before...)
}

// Creates and deletes are idempotent: a second create or delete is
// "already so" and writes nothing; a delete of an endpoint braid never
// made touches nothing.
func TestCreateDeleteIdempotent(t *testing.T) {
	r := newRig(t)
	e := ep("10.101.0.2", "w1", FlagSubflow)
	for i, wantWrites := range []int64{1, 0} {
		if n := r.wrote(func() {
			if err := r.apply(planCreate(e)); err != nil {
				t.Fatalf("create %d: %v", i, err)
			}
		}); n != wantWrites {
			t.Errorf("create %d: %d writes, want %d", i, n, wantWrites)
		}
	}
	wantLines(t, "endpoints", r.endpointLines(), "10.101.0.2 dev=w1 flags=subflow")
	for i, wantWrites := range []int64{1, 0} {
		if n := r.wrote(func() {
			if err := r.apply(planDelete(e)); err != nil {
				t.Fatalf("delete %d: %v", i, err)
			}
		}); n != wantWrites {
			t.Errorf("delete %d: %d writes, want %d", i, n, wantWrites)
		}
	}
	if got := r.endpoints(); len(got) != 0 {
		t.Errorf("endpoints after delete: %+v", got)
	}
	// Someone else's endpoint at the address: a delete of braid's (which
	// it does not have) leaves it.
	r.ip("mptcp", "endpoint", "add", "10.101.0.2", "dev", "w1", "signal")
	if err := r.apply(planDelete(e)); err != nil {
		t.Fatal(err)
	}
	wantLines(t, "endpoints", r.endpointLines(), "10.101.0.2 dev=w1 flags=signal")
	// Limits: a second update and a second restore write nothing.
	l := Limits{Subflows: 4, AddAddrAccepted: 4}
	up := plan.Change{Action: plan.Update, Before: Limits{Subflows: 2}, After: l}
	if n := r.wrote(func() { r.apply(up); r.apply(up) }); n != 1 {
		t.Errorf("two limit updates: %d writes, want 1", n)
	}
	if n := r.wrote(func() { r.apply(planDelete(l)); r.apply(planDelete(l)) }); n != 1 {
		t.Errorf("two limit restores: %d writes, want 1", n)
	}
	if got := r.limits(); got != "add_addr_accepted 0 subflows 2" {
		t.Errorf("limits after restore: %q", got)
	}
}

// A change of backup or fullmesh is made in place (SET_FLAGS: one write,
// the same id, subflows kept); a change of interface deletes and adds the
// endpoint again with the same id.
func TestUpdateFlagsAndInterface(t *testing.T) {
	r := newRig(t)
	r.converge(resources(ep("10.101.0.2", "w1", FlagSubflow)))
	id := r.endpoints()[0].ID
	for _, step := range []struct {
		e      Endpoint
		writes int64
		line   string
	}{
		{ep("10.101.0.2", "w1", FlagSubflow|FlagBackup|FlagFullmesh), 1, "10.101.0.2 dev=w1 flags=subflow backup fullmesh"},
		{ep("10.101.0.2", "w1", FlagSubflow|FlagFullmesh), 1, "10.101.0.2 dev=w1 flags=subflow fullmesh"},
		{ep("10.101.0.2", "w1", FlagSubflow), 1, "10.101.0.2 dev=w1 flags=subflow"},
		{ep("10.101.0.2", "w2", FlagSubflow|FlagBackup), 2, "10.101.0.2 dev=w2 flags=subflow backup"},
		{ep("10.101.0.2", "", FlagSubflow), 2, "10.101.0.2 dev= flags=subflow"},
	} {
		want := resources(step.e)
		changes, _ := r.plan(want)
		wantActions(t, changes, "~mptcp.endpoint[10.101.0.2]")
		if n := r.wrote(func() { r.converge(want) }); n != step.writes {
			t.Errorf("%s: %d writes, want %d", plan.Describe(step.e), n, step.writes)
		}
		wantLines(t, "endpoints", r.endpointLines(), step.line)
		if got := r.endpoints()[0].ID; got != id {
			t.Errorf("%s: id %d, want %d kept", plan.Describe(step.e), got, id)
		}
		r.settled(want)
	}
}

// An address that changes moves the endpoint: the plan creates the new one
// and deletes the old one.
func TestAddressChangeMovesEndpoint(t *testing.T) {
	r := newRig(t)
	r.converge(resources(ep("10.101.0.2", "w1", FlagSubflow)))
	want := resources(ep("10.101.0.3", "w1", FlagSubflow))
	changes, _ := r.plan(want)
	wantActions(t, changes, "+mptcp.endpoint[10.101.0.3]", "-mptcp.endpoint[10.101.0.2]")
	r.converge(want)
	wantLines(t, "endpoints", r.endpointLines(), "10.101.0.3 dev=w1 flags=subflow")
	r.settled(want)
	if id := r.recordedID("10.101.0.2"); id != -1 {
		t.Errorf("the old address is still recorded (id %d)", id)
	}
}

// Drift: an endpoint deleted by hand is planned and added again; one
// replaced by hand (same address, another id) is foreign now; an id braid
// used that now holds another address is never deleted.
func TestDrift(t *testing.T) {
	r := newRig(t)
	want := labWant()
	r.converge(want)
	ids := map[string]int{}
	for _, e := range r.endpoints() {
		ids[e.Address] = e.ID
	}

	r.ip("mptcp", "endpoint", "delete", "id", fmt.Sprint(ids["10.101.0.2"]))
	changes, _ := r.plan(want)
	wantActions(t, changes, "+mptcp.endpoint[10.101.0.2]")
	r.converge(want)
	r.settled(want)

	// Replaced: deleted and added again by someone else, with another id.
	old := r.recordedID("10.102.0.2")
	r.ip("mptcp", "endpoint", "delete", "id", fmt.Sprint(old))
	r.ip("mptcp", "endpoint", "add", "10.102.0.2", "id", "99", "dev", "w2", "subflow", "backup")
	changes, conflicts := r.plan(want)
	if len(changes) != 0 || len(conflicts) != 1 || conflicts[0].Address != "mptcp.endpoint[10.102.0.2]" {
		t.Fatalf("a replaced endpoint: changes %s, conflicts %v", plantest.Describe(changes), conflicts)
	}

	// The id of braid's IPv6 endpoint now holds another address.
	v6 := r.recordedID("2001:db8:101::2")
	r.ip("mptcp", "endpoint", "delete", "id", fmt.Sprint(v6))
	r.ip("mptcp", "endpoint", "add", "198.51.100.1", "id", fmt.Sprint(v6), "dev", "w1", "signal")
	// Destroy, with the record still naming both ids.
	r.converge(nil)
	wantLines(t, "endpoints after destroy", r.endpointLines(),
		"10.102.0.2 dev=w2 flags=subflow backup",
		"198.51.100.1 dev=w1 flags=signal")
	if !r.rec.Empty() {
		t.Errorf("stale record entries were not forgotten")
	}
}

// The record entry is written before the endpoint: when it cannot be
// written, nothing reaches the kernel.
func TestRecordBeforeWrite(t *testing.T) {
	r := newRig(t)
	// A record whose directory cannot be created (in /proc; root ignores
	// permissions).
	rec, err := record.Open("/proc/braid-no-such-dir")
	if err != nil {
		t.Fatal(err)
	}
	d := r.newDriver(rec)
	err = d.Apply(context.Background(), planCreate(ep("10.101.0.2", "w1", FlagSubflow)))
	if err == nil {
		t.Fatal("apply succeeded without a record")
	}
	if got := r.endpoints(); len(got) != 0 {
		t.Errorf("an endpoint reached the kernel without its record entry: %+v", got)
	}
	err = d.Apply(context.Background(), plan.Change{Action: plan.Update, Before: Limits{Subflows: 2}, After: Limits{Subflows: 4, AddAddrAccepted: 4}})
	if err == nil {
		t.Fatal("apply succeeded without a record")
	}
	if got := r.limits(); got != "add_addr_accepted 0 subflows 2" {
		t.Errorf("limits changed without their record entry: %q", got)
	}
}

// The kernel holds at most eight endpoints: the ninth is refused with an
// error naming it, and claims nothing.
func TestTooManyEndpoints(t *testing.T) {
	r := newRig(t)
	for i := 1; i <= MaxEndpoints; i++ {
		r.ip("mptcp", "endpoint", "add", fmt.Sprintf("192.0.2.%d", i), "dev", "w1", "signal")
	}
	err := r.apply(planCreate(ep("10.101.0.2", "w1", FlagSubflow)))
	if err == nil || !strings.Contains(err.Error(), "add mptcp.endpoint[10.101.0.2]") || !strings.Contains(err.Error(), "maximum of 8 endpoints") {
		t.Errorf("ninth endpoint: %v", err)
	}
	if id := r.recordedID("10.101.0.2"); id != -1 {
		t.Errorf("the refused endpoint is recorded (id %d)", id)
	}
}

// An interface that does not exist is an error naming the endpoint and the
// interface.
func TestMissingInterface(t *testing.T) {
	r := newRig(t)
	err := r.apply(planCreate(ep("10.101.0.2", "nosuch0", FlagSubflow)))
	if !errors.Is(err, ErrNoLink) || !strings.Contains(err.Error(), "mptcp.endpoint[10.101.0.2]") || !strings.Contains(err.Error(), "nosuch0") {
		t.Errorf("missing interface: %v", err)
	}
}

// Nothing desired and nothing recorded: Observe does not ask the kernel
// (a spec without MPTCP works where the kernel has none).
func TestObserveNothingAsksNothing(t *testing.T) {
	r := newRig(t)
	r.d.Close()
	live, err := r.d.Observe(context.Background(), nil)
	if err != nil || len(live) != 0 {
		t.Errorf("Observe(nil) on a closed driver = %v, %v; want nothing", live, err)
	}
	if _, err := r.d.Observe(context.Background(), labWant()); err == nil {
		t.Errorf("Observe of a desired state on a closed driver succeeded")
	}
}

// A read-only plan never writes the record, even when it finds entries
// stale; the next Apply forgets them.
func TestObserveDoesNotWriteTheRecord(t *testing.T) {
	r := newRig(t)
	r.converge(resources(ep("10.101.0.2", "w1", FlagSubflow)))
	r.ip("mptcp", "endpoint", "flush")
	r.observe(nil)
	if id := r.recordedID("10.101.0.2"); id == -1 {
		t.Fatal("Observe forgot a record entry")
	}
	if err := r.d.PruneRecord(); err != nil {
		t.Fatal(err)
	}
	if id := r.recordedID("10.101.0.2"); id != -1 {
		t.Errorf("PruneRecord kept a stale entry (id %d)", id)
	}
}

// A driver without a record says so on first use, and never panics.
func TestNewWithoutRecord(t *testing.T) {
	d := New(Options{})
	defer d.Close()
	if _, err := d.Observe(context.Background(), nil); err == nil || !strings.Contains(err.Error(), "Record is required") {
		t.Errorf("Observe: %v", err)
	}
	if err := d.Apply(context.Background(), planCreate(ep("10.0.0.1", "", FlagSubflow))); err == nil || !strings.Contains(err.Error(), "Record is required") {
		t.Errorf("Apply: %v", err)
	}
}
