// Package plantest gives drivers' tests the observe, diff and apply steps
// of the engine, one change at a time, the check that a converged state
// stays so, and short forms of plans for their failure messages.
package plantest

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/braid-router/braid/drivers/failpoint"
	"github.com/braid-router/braid/reconcile/plan"
)

// Driver is the part of a driver these helpers use (as reconcile.Driver).
type Driver interface {
	Observe(ctx context.Context, desired []plan.Resource) ([]plan.Observed, error)
	Apply(ctx context.Context, c plan.Change) error
}

// Observe is d's live state for want; it fails the test on an error.
func Observe(t testing.TB, d Driver, want []plan.Resource) []plan.Observed {
	t.Helper()
	live, err := d.Observe(context.Background(), want)
	if err != nil {
		t.Fatalf("observe: %v", err)
	}
	return live
}

// Converge observes and diffs, applies every change one at a time, and
// returns the changes; it fails the test on an error.
func Converge(t testing.TB, d Driver, want []plan.Resource) []plan.Change {
	t.Helper()
	changes, _ := plan.Diff(want, Observe(t, d, want))
	for _, c := range changes {
		if err := d.Apply(context.Background(), c); err != nil {
			t.Fatalf("apply %s %s: %v", c.Action, c.Address(), err)
		}
	}
	return changes
}

// Plan observes and diffs, as the engine plans; it fails the test on an
// error.
func Plan(t testing.TB, d Driver, want []plan.Resource) ([]plan.Change, []plan.Conflict) {
	t.Helper()
	return plan.Diff(want, Observe(t, d, want))
}

// Settled checks that a second plan is empty and that converging again
// writes nothing (writes counts d's kernel writes).
func Settled(t testing.TB, d Driver, writes *failpoint.Counter, want []plan.Resource) {
	t.Helper()
	if n := Writes(writes, func() {
		if changes := Converge(t, d, want); len(changes) != 0 {
			t.Fatalf("plan after apply is not empty: %s", Describe(changes))
		}
	}); n != 0 {
		t.Fatalf("a converged state made %d writes", n)
	}
}

// Writes runs fn and returns the number of kernel writes writes counted
// meanwhile.
func Writes(writes *failpoint.Counter, fn func()) int64 {
	before := writes.Count()
	fn()
	return writes.Count() - before
}

// Describe lists changes one a line: "+ ADDRESS description", and for an
// update "~ ADDRESS before  ->  after".
func Describe(cs []plan.Change) string {
	var b strings.Builder
	for _, c := range cs {
		b.WriteString("\n  " + c.Action.Symbol() + " " + c.Address())
		switch {
		case c.Action == plan.Update && c.Before != nil && c.After != nil:
			b.WriteString(" " + plan.Describe(c.Before) + "  ->  " + plan.Describe(c.After))
		case c.After != nil:
			b.WriteString(" " + plan.Describe(c.After))
		}
	}
	return b.String()
}

// Actions summarises changes as "+addr", "~addr", "-addr", in order.
func Actions(cs []plan.Change) []string {
	var s []string
	for _, c := range cs {
		s = append(s, c.Action.Symbol()+c.Address())
	}
	return s
}

// SortedActions is Actions, sorted.
func SortedActions(cs []plan.Change) []string {
	s := Actions(cs)
	slices.Sort(s)
	return s
}

// WantActions fails the test unless the actions of got (Actions) are
// want, in any order.
func WantActions(t testing.TB, got []plan.Change, want ...string) {
	t.Helper()
	want = slices.Sorted(slices.Values(want))
	if g := SortedActions(got); !slices.Equal(g, want) {
		t.Fatalf("changes:\n got  %q\n want %q%s", g, want, Describe(got))
	}
}
