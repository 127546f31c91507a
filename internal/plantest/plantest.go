// Package plantest gives drivers' tests the observe, diff and apply steps
// of the engine, one change at a time, and short forms of plans for their
// failure messages.
package plantest

import (
	"context"
	"strings"
	"testing"

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

// Describe lists changes one a line: "+ ADDRESS description".
func Describe(cs []plan.Change) string {
	var b strings.Builder
	for _, c := range cs {
		b.WriteString("\n  " + c.Action.Symbol() + " " + c.Address())
		if c.After != nil {
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
