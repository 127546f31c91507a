package reconcile

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/braid-router/braid/reconcile/plan"
)

// item is a resource of the in-memory driver below.
type item struct{ kind, name, value string }

func (i item) Address() string { return i.kind + "[" + i.name + "]" }
func (i item) Fields() []plan.Field {
	return []plan.Field{{Name: "value", Value: i.value}}
}

// memDriver is an in-memory driver for the engine's own logic (ordering,
// rollback, verify). Kernel drivers are tested against the real kernel in
// their own packages.
type memDriver struct {
	kind    string
	live    map[string]plan.Resource
	foreign map[string]item
	order   []string
	log     *[]string
	refuse  string // address whose writes fail
	ignore  string // address whose writes "succeed" without effect
}

func newMem(kind string, log *[]string) *memDriver {
	return &memDriver{kind: kind, live: map[string]plan.Resource{}, foreign: map[string]item{}, log: log}
}

func (m *memDriver) Name() string              { return m.kind }
func (m *memDriver) Owns(r plan.Resource) bool { return r.(item).kind == m.kind }
func (m *memDriver) set(i item)                { m.live[i.Address()] = i; m.order = append(m.order, i.Address()) }
func (m *memDriver) Observe(_ context.Context, desired []plan.Resource) ([]plan.Observed, error) {
	var out []plan.Observed
	for _, a := range m.order {
		if i, ok := m.live[a]; ok {
			out = append(out, plan.Observed{Resource: i})
		}
	}
	for _, d := range desired {
		if f, ok := m.foreign[d.Address()]; ok {
			out = append(out, plan.Observed{Resource: f, Foreign: true})
		}
	}
	return out, nil
}

func (m *memDriver) Apply(_ context.Context, c plan.Change) error {
	if c.Address() == m.refuse {
		return errors.New("refused")
	}
	*m.log = append(*m.log, string(c.Action)+" "+c.Address())
	if c.Address() == m.ignore {
		return nil
	}
	switch c.Action {
	case plan.Delete:
		delete(m.live, c.Address())
	default:
		if !slices.Contains(m.order, c.Address()) {
			m.order = append(m.order, c.Address())
		}
		m.live[c.Address()] = c.After
	}
	return nil
}

func TestPlanOrderAddsBeforeDeletes(t *testing.T) {
	var log []string
	links, routes := newMem("link", &log), newMem("route", &log)
	links.set(item{"link", "old", "1"})
	routes.set(item{"route", "stale1", "1"})
	routes.set(item{"route", "stale2", "1"})
	routes.set(item{"route", "keep", "1"})
	e := &Engine{Drivers: []Driver{links, routes}}
	d := Desired{Resources: []plan.Resource{
		item{"link", "a", "1"},
		item{"route", "keep", "2"},
		item{"route", "new", "1"},
	}}
	p, err := e.Plan(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range p.Changes {
		got = append(got, c.Action.Symbol()+c.Address())
	}
	want := "+link[a] ~route[keep] +route[new] -route[stale2] -route[stale1] -link[old]"
	if strings.Join(got, " ") != want {
		t.Fatalf("plan order %q, want %q", strings.Join(got, " "), want)
	}
	if a, c, r := p.Counts(); a != 2 || c != 1 || r != 3 {
		t.Errorf("counts = %d %d %d", a, c, r)
	}
	if _, err := e.Apply(context.Background(), p, ApplyOptions{Rollback: true}); err != nil {
		t.Fatal(err)
	}
	if err := e.Verify(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	p, _ = e.Plan(context.Background(), d)
	if !p.Empty() {
		t.Fatalf("second plan not empty: %v", p.Changes)
	}
}

func TestConflictIsNotAChange(t *testing.T) {
	var log []string
	routes := newMem("route", &log)
	routes.foreign["route[default]"] = item{"route", "default", "foreign"}
	e := &Engine{Drivers: []Driver{routes}}
	d := Desired{Resources: []plan.Resource{item{"route", "default", "mine"}, item{"route", "other", "x"}}}
	p, err := e.Plan(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Conflicts) != 1 || p.Conflicts[0].Address != "route[default]" || !strings.Contains(p.Conflicts[0].Foreign, "foreign") {
		t.Fatalf("conflicts = %v", p.Conflicts)
	}
	if len(p.Changes) != 1 || p.Changes[0].Address() != "route[other]" {
		t.Fatalf("changes = %v, want only route[other]", p.Changes)
	}
	res, err := e.Apply(context.Background(), p, ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Verify(context.Background(), d); err != nil {
		t.Fatalf("a conflict is not a change, verify must pass: %v", err)
	}
	for _, s := range res.Statuses(p) {
		if s.Address == "route[default]" && s.State != plan.Failed {
			t.Errorf("conflicting object status %v, want error", s)
		}
		if s.Address == "route[other]" && s.State != plan.Done {
			t.Errorf("applied object status %v, want done", s)
		}
	}
	if routes.foreign["route[default]"].value != "foreign" {
		t.Error("foreign object touched")
	}
}

func TestRefusedWriteRollsBackTheRun(t *testing.T) {
	var log []string
	links, routes := newMem("link", &log), newMem("route", &log)
	links.set(item{"link", "eth0", "down"})
	routes.set(item{"route", "gone", "1"})
	routes.refuse = "route[bad]"
	e := &Engine{Drivers: []Driver{links, routes}}
	before, _ := e.Observe(context.Background(), Desired{})
	d := Desired{Resources: []plan.Resource{item{"link", "eth0", "up"}, item{"route", "good", "1"}, item{"route", "bad", "1"}}}
	p, err := e.Plan(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.Apply(context.Background(), p, ApplyOptions{Rollback: true})
	var aerr *ApplyError
	if !errors.As(err, &aerr) {
		t.Fatalf("err = %v, want *ApplyError", err)
	}
	if !aerr.RolledBack || aerr.Restored != 2 || !res.RolledBack {
		t.Fatalf("rollback: %+v", aerr)
	}
	if !strings.Contains(err.Error(), "create route[bad]: refused; restored the 2 changes this run had made") {
		t.Errorf("error %q does not say what failed and what was restored", err)
	}
	wantLog := "update link[eth0]|create route[good]|delete route[good]|update link[eth0]"
	if got := strings.Join(log, "|"); got != wantLog {
		t.Errorf("writes %q, want %q", got, wantLog)
	}
	after, _ := e.Observe(context.Background(), Desired{})
	if describeAll(before) != describeAll(after) {
		t.Errorf("state after rollback\n%s\ndiffers from before\n%s", describeAll(after), describeAll(before))
	}
	// Without rollback (the daemon), what took stays.
	log = nil
	p, _ = e.Plan(context.Background(), d)
	e.Apply(context.Background(), p, ApplyOptions{})
	if links.live["link[eth0]"].(item).value != "up" {
		t.Error("without rollback, the applied change must stay")
	}
}

func describeAll(parts [][]plan.Observed) string {
	var b strings.Builder
	for _, p := range parts {
		for _, o := range p {
			b.WriteString(o.Address() + " " + plan.Describe(o) + "\n")
		}
	}
	return b.String()
}

func TestVerifyNamesWhatDidNotTake(t *testing.T) {
	var log []string
	routes := newMem("route", &log)
	routes.ignore = "route[sticky]"
	e := &Engine{Drivers: []Driver{routes}}
	d := Desired{Resources: []plan.Resource{item{"route", "sticky", "1"}, item{"route", "fine", "1"}}}
	p, _ := e.Plan(context.Background(), d)
	if _, err := e.Apply(context.Background(), p, ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	err := e.Verify(context.Background(), d)
	var verr *VerifyError
	if !errors.As(err, &verr) || len(verr.Remaining) != 1 || !strings.Contains(err.Error(), "route[sticky] (still to create)") {
		t.Fatalf("verify = %v", err)
	}
}

func TestNoDriver(t *testing.T) {
	e := &Engine{}
	if _, err := e.Plan(context.Background(), Desired{Resources: []plan.Resource{item{"x", "y", "z"}}}); err == nil {
		t.Fatal("a resource no driver owns must be an error")
	}
}

// batchDriver applies runs of changes at once, as the netlink driver does.
type batchDriver struct {
	*memDriver
	runs []int
}

func (b *batchDriver) ApplyBatch(ctx context.Context, cs []plan.Change) (int, error) {
	b.runs = append(b.runs, len(cs))
	for i, c := range cs {
		if err := b.Apply(ctx, c); err != nil {
			return i, err
		}
	}
	return len(cs), nil
}

func TestBatchesAndStatuses(t *testing.T) {
	var log []string
	links := newMem("link", &log)
	routes := &batchDriver{memDriver: newMem("route", &log)}
	routes.refuse = "route[r3]"
	e := &Engine{Drivers: []Driver{links, routes}}
	d := Desired{Resources: []plan.Resource{
		item{"link", "l", "up"},
		item{"route", "r1", "1"}, item{"route", "r2", "1"}, item{"route", "r3", "1"}, item{"route", "r4", "1"},
	}}
	p, _ := e.Plan(context.Background(), d)
	res, err := e.Apply(context.Background(), p, ApplyOptions{})
	if err == nil || len(res.Applied) != 3 || res.Failed.Address() != "route[r3]" {
		t.Fatalf("apply: %v, applied %d", err, len(res.Applied))
	}
	if len(routes.runs) != 1 || routes.runs[0] != 4 {
		t.Errorf("the four routes were not one run: %v", routes.runs)
	}
	got := map[string]plan.State{}
	for _, s := range res.Statuses(p) {
		got[s.Address] = s.State
		if s.State == plan.Failed && !strings.Contains(s.Error, "refused") {
			t.Errorf("status of %s lacks the error: %+v", s.Address, s)
		}
	}
	want := map[string]plan.State{"link[l]": plan.Done, "route[r1]": plan.Done, "route[r2]": plan.Done, "route[r3]": plan.Failed, "route[r4]": plan.Pending}
	for a, st := range want {
		if got[a] != st {
			t.Errorf("%s: %s, want %s", a, got[a], st)
		}
	}
	// With rollback, the runs are undone in batches too, in reverse.
	routes.refuse = "route[r4]"
	log = nil
	p, _ = e.Plan(context.Background(), d)
	res, err = e.Apply(context.Background(), p, ApplyOptions{Rollback: true})
	var aerr *ApplyError
	if !errors.As(err, &aerr) || !aerr.RolledBack || aerr.Restored != 1 {
		t.Fatalf("rollback: %v", err)
	}
	if got := strings.Join(log, "|"); got != "create route[r3]|delete route[r3]" {
		t.Errorf("writes %q", got)
	}
	for _, s := range res.Statuses(p) {
		if s.Address == "route[r3]" && s.State != plan.Pending {
			t.Errorf("a rolled-back change is pending again, got %v", s.State)
		}
	}
}

// prefetching is a memDriver that logs its Prefetch and Observe calls,
// and fails its Observe if fail is set.
type prefetching struct {
	*memDriver
	calls *[]string
	fail  bool
}

func (p prefetching) Prefetch(context.Context) { *p.calls = append(*p.calls, "prefetch "+p.kind) }
func (p prefetching) Observe(ctx context.Context, desired []plan.Resource) ([]plan.Observed, error) {
	*p.calls = append(*p.calls, "observe "+p.kind)
	if p.fail {
		return nil, errors.New("no")
	}
	return p.memDriver.Observe(ctx, desired)
}

// Every driver after the first starts reading before the first observes;
// the first reads in its own way.
func TestObserveStartsTheLaterDriversReads(t *testing.T) {
	var log, calls []string
	e := &Engine{Drivers: []Driver{
		prefetching{newMem("a", &log), &calls, false},
		newMem("b", &log),
		prefetching{newMem("c", &log), &calls, false},
	}}
	if err := e.Verify(context.Background(), Desired{}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"prefetch c", "observe a", "observe c"}; !slices.Equal(calls, want) {
		t.Errorf("calls %q, want %q", calls, want)
	}

	// When a driver fails to observe, the reads started for the later ones
	// are used up all the same: a later Observe must not see them.
	calls = nil
	e.Drivers[0] = prefetching{newMem("a", &log), &calls, true}
	if _, err := e.Observe(context.Background(), Desired{}); err == nil {
		t.Fatal("no error")
	}
	if want := []string{"prefetch c", "observe a", "observe c"}; !slices.Equal(calls, want) {
		t.Errorf("calls %q, want %q", calls, want)
	}
}
