// Package reconcile is braid's engine: compile a spec and the current facts
// into the desired state, observe the live state through the drivers, diff
// them into a plan, apply it in dependency order and verify the result.
package reconcile

import (
	"context"

	"github.com/braid-router/braid/reconcile/plan"
)

// Driver converges one slice of the host.
type Driver interface {
	// Name is the driver's name in plans and status ("netlink", ...).
	Name() string
	// Owns reports whether a resource of the desired state belongs to this
	// driver.
	Owns(r plan.Resource) bool
	// Observe returns the live objects the driver owns, and the foreign
	// objects that occupy the address of a desired resource (so the diff
	// can report a conflict). The order is the driver's apply order, so
	// deletes can run in reverse.
	Observe(ctx context.Context, desired []plan.Resource) ([]plan.Observed, error)
	// Apply performs one change. EEXIST on a create of an object braid owns
	// and ENOENT on a delete are "already so", not errors. A write that
	// took effect is counted before Apply returns.
	Apply(ctx context.Context, c plan.Change) error
}

// RecordPruner is a Driver whose ownership record can hold entries for
// objects the kernel removed by itself (a link unplugged, and with it its
// addresses): its Observe finds them stale, and PruneRecord forgets them.
// A read-only plan never calls it; a writer does after planning.
type RecordPruner interface {
	PruneRecord() error
}

// Prefetcher is a Driver that can start reading the live state before the
// desired state is known, so that its reads overlap with parsing and
// compiling the spec. The next Observe uses what Prefetch read (once: any
// later Observe reads afresh). A writer calls Prefetch only once it holds
// the namespace's lock, so that the state read cannot predate another
// braid's writes.
type Prefetcher interface {
	Prefetch(ctx context.Context)
}
