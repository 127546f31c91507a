package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/braid-router/braid/reconcile/plan"
)

// Engine diffs a desired state against what its drivers observe, and applies
// the difference. Drivers are listed in apply order.
type Engine struct {
	Drivers []Driver
	Log     *slog.Logger
}

// Plan is the difference between the desired and the live state.
type Plan struct {
	// Changes in apply order: creates and updates driver by driver, then
	// deletes in reverse.
	Changes []plan.Change
	// Conflicts are foreign objects in the way; they are left alone.
	Conflicts []plan.Conflict
	// Notes are things to say that are not changes.
	Notes []plan.Note
	// Desired is what the plan was computed for.
	Desired Desired
}

// Empty reports whether the plan has no changes. Conflicts and notes are not
// changes.
func (p *Plan) Empty() bool { return len(p.Changes) == 0 }

// Counts returns how many resources the plan adds, changes and removes.
func (p *Plan) Counts() (add, change, remove int) {
	for _, c := range p.Changes {
		switch c.Action {
		case plan.Create:
			add++
		case plan.Update:
			change++
		case plan.Delete:
			remove++
		}
	}
	return add, change, remove
}

// Observe returns the live state of every driver, keyed by driver, for the
// given desired state (drivers report foreign objects at desired
// addresses).
func (e *Engine) Observe(ctx context.Context, d Desired) ([][]plan.Observed, error) {
	parts, err := e.partition(d.Resources)
	if err != nil {
		return nil, err
	}
	live := make([][]plan.Observed, len(e.Drivers))
	for i, drv := range e.Drivers {
		obs, err := drv.Observe(ctx, parts[i])
		if err != nil {
			return nil, fmt.Errorf("observe %s: %w", drv.Name(), err)
		}
		live[i] = obs
	}
	return live, nil
}

func (e *Engine) partition(rs []plan.Resource) ([][]plan.Resource, error) {
	parts := make([][]plan.Resource, len(e.Drivers))
next:
	for _, r := range rs {
		for i, drv := range e.Drivers {
			if drv.Owns(r) {
				parts[i] = append(parts[i], r)
				continue next
			}
		}
		return nil, fmt.Errorf("no driver converges %s", r.Address())
	}
	return parts, nil
}

// Plan observes the live state and computes the changes to reach d.
func (e *Engine) Plan(ctx context.Context, d Desired) (*Plan, error) {
	parts, err := e.partition(d.Resources)
	if err != nil {
		return nil, err
	}
	live, err := e.Observe(ctx, d)
	if err != nil {
		return nil, err
	}
	p := &Plan{Notes: d.Notes, Desired: d}
	var deletes [][]plan.Change
	for i := range e.Drivers {
		changes, conflicts := plan.Diff(parts[i], live[i])
		p.Conflicts = append(p.Conflicts, conflicts...)
		var del []plan.Change
		for _, c := range changes {
			if c.Action == plan.Delete {
				del = append(del, c)
			} else {
				p.Changes = append(p.Changes, c)
			}
		}
		deletes = append(deletes, del)
	}
	for i := len(deletes) - 1; i >= 0; i-- {
		p.Changes = append(p.Changes, deletes[i]...)
	}
	return p, nil
}

// Result is what an apply did.
type Result struct {
	// Applied are the changes that took effect, in order.
	Applied []plan.Change
	// Failed is the change the kernel refused, if any.
	Failed *plan.Change
	// RolledBack is set when the applied changes were undone.
	RolledBack bool
	// Status is the status of every object of the plan's desired state and
	// of every change.
	Status []plan.Status
}

// ApplyOptions tune Apply.
type ApplyOptions struct {
	// Rollback undoes the changes of this run when one is refused (the
	// CLI); otherwise what took stays (the daemon retries).
	Rollback bool
}

// ApplyError reports a refused change, and whether the run was undone.
type ApplyError struct {
	Change      plan.Change
	Err         error
	RolledBack  bool
	Restored    int
	RollbackErr error
}

func (e *ApplyError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %v", e.Change.Action, e.Change.Address(), e.Err)
	switch {
	case e.RollbackErr != nil:
		fmt.Fprintf(&b, "; restoring the %d changes of this run failed too: %v", e.Restored, e.RollbackErr)
	case e.RolledBack:
		fmt.Fprintf(&b, "; restored the %d changes this run had made", e.Restored)
	}
	return b.String()
}

func (e *ApplyError) Unwrap() error { return e.Err }

// Apply performs the plan's changes in order. When a change is refused and
// opts.Rollback is set, the changes already made are undone in reverse
// order.
func (e *Engine) Apply(ctx context.Context, p *Plan, opts ApplyOptions) (*Result, error) {
	res := &Result{}
	status := map[string]*plan.Status{}
	var order []string
	for _, r := range p.Desired.Resources {
		status[r.Address()] = &plan.Status{Address: r.Address(), State: plan.Done}
		order = append(order, r.Address())
	}
	for _, c := range p.Changes {
		if _, ok := status[c.Address()]; !ok {
			order = append(order, c.Address())
		}
		status[c.Address()] = &plan.Status{Address: c.Address(), State: plan.Pending}
	}
	for _, c := range p.Conflicts {
		status[c.Address] = &plan.Status{Address: c.Address, State: plan.Failed, Error: c.String()}
	}
	defer func() {
		for _, a := range order {
			res.Status = append(res.Status, *status[a])
		}
	}()
	for _, c := range p.Changes {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		drv, err := e.driverFor(c.Resource())
		if err != nil {
			return res, err
		}
		if err := drv.Apply(ctx, c); err != nil {
			fc := c
			res.Failed = &fc
			status[c.Address()].State = plan.Failed
			status[c.Address()].Error = err.Error()
			aerr := &ApplyError{Change: c, Err: err}
			if opts.Rollback && len(res.Applied) > 0 {
				aerr.Restored = len(res.Applied)
				aerr.RollbackErr = e.rollback(ctx, res.Applied)
				aerr.RolledBack = aerr.RollbackErr == nil
				res.RolledBack = aerr.RolledBack
			}
			return res, aerr
		}
		res.Applied = append(res.Applied, c)
		status[c.Address()].State = plan.Done
	}
	return res, nil
}

// rollback undoes applied changes in reverse order, trying every one and
// joining the errors.
func (e *Engine) rollback(ctx context.Context, applied []plan.Change) error {
	var errs []error
	for i := len(applied) - 1; i >= 0; i-- {
		inv := applied[i].Inverse()
		drv, err := e.driverFor(inv.Resource())
		if err == nil {
			err = drv.Apply(context.WithoutCancel(ctx), inv)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("undo %s %s: %w", applied[i].Action, applied[i].Address(), err))
		}
	}
	return errors.Join(errs...)
}

func (e *Engine) driverFor(r plan.Resource) (Driver, error) {
	for _, d := range e.Drivers {
		if d.Owns(r) {
			return d, nil
		}
	}
	return nil, fmt.Errorf("no driver converges %s", r.Address())
}

// VerifyError lists the objects that did not take.
type VerifyError struct {
	Remaining []plan.Change
}

func (e *VerifyError) Error() string {
	var addrs []string
	for _, c := range e.Remaining {
		addrs = append(addrs, fmt.Sprintf("%s (still to %s)", c.Address(), c.Action))
	}
	return "verify: these changes did not take: " + strings.Join(addrs, ", ")
}

// Verify observes again and fails with a *VerifyError naming every object
// that is still not as desired. Conflicts are not changes.
func (e *Engine) Verify(ctx context.Context, d Desired) error {
	p, err := e.Plan(ctx, d)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	if !p.Empty() {
		return &VerifyError{Remaining: p.Changes}
	}
	return nil
}

// Rollback undoes changes that Apply made, in reverse order.
func (e *Engine) Rollback(ctx context.Context, applied []plan.Change) error {
	return e.rollback(ctx, applied)
}
