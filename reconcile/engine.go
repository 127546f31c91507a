package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/braid-router/braid/reconcile/plan"
)

// Engine diffs a desired state against what its drivers observe, and applies
// the difference. Drivers are listed in apply order.
type Engine struct {
	Drivers []Driver
	Log     *slog.Logger
	// Checkers look beyond braid's objects at each plan (another firewall
	// dropping what braid lets through); their warnings are not changes.
	Checkers []Checker
}

// Checker looks at what else is on the box beside braid's objects, for a
// desired state, and warns of what defeats it. A checker that cannot look
// says so as a warning: it never fails a plan.
type Checker interface {
	Check(ctx context.Context, d Desired) []plan.Warning
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
	// Warnings are what the checkers found defeating the desired state
	// (another firewall dropping what braid lets through): not changes.
	Warnings []plan.Warning
	// Sessions are the changes to the running daemon's sessions, in a plan
	// made while it runs: what it will start, reconfigure and stop.
	Sessions []plan.Change
	// ByDaemon lists, in a plan made while no daemon runs, what only
	// `braid run` runs: the sessions and the process-bound objects. They
	// are not changes.
	ByDaemon []plan.Resource
	// Desired is what the plan was computed for.
	Desired Desired
}

// Empty reports whether the plan has no changes, to the kernel or to the
// daemon's sessions. Conflicts, notes and what only the daemon runs are
// not changes.
func (p *Plan) Empty() bool { return len(p.Changes) == 0 && len(p.Sessions) == 0 }

// Counts returns how many resources the plan adds, changes and removes.
func (p *Plan) Counts() (add, change, remove int) {
	for _, c := range slices.Concat(p.Changes, p.Sessions) {
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
//
// The drivers observe one after the other, but every driver after the
// first that is a Prefetcher starts its reads at once, so that they
// overlap with the earlier drivers' (reading back braid's nftables table
// to verify an apply takes about as long as the netlink dumps). That is
// the same as each of them reading at the start of Observe, so it holds
// for any caller; the first driver reads in its own way, which may use
// more of the machine than its Prefetch does.
func (e *Engine) Observe(ctx context.Context, d Desired) ([][]plan.Observed, error) {
	parts, err := e.partition(d.Resources)
	if err != nil {
		return nil, err
	}
	return e.observe(ctx, parts)
}

// observe is Observe of a desired state already partitioned by driver.
func (e *Engine) observe(ctx context.Context, parts [][]plan.Resource) ([][]plan.Observed, error) {
	prefetched := make([]bool, len(e.Drivers))
	for i, drv := range e.Drivers {
		if p, ok := drv.(Prefetcher); ok && i > 0 {
			p.Prefetch(ctx)
			prefetched[i] = true
		}
	}
	live := make([][]plan.Observed, len(e.Drivers))
	for i, drv := range e.Drivers {
		obs, err := drv.Observe(ctx, parts[i])
		if err != nil {
			// A read started for this Observe must not be left for a
			// later one, which would see the state as it was now: the
			// drivers after this one observe all the same, for nothing.
			for j := i + 1; j < len(e.Drivers); j++ {
				if prefetched[j] {
					e.Drivers[j].Observe(context.WithoutCancel(ctx), parts[j])
				}
			}
			return nil, fmt.Errorf("observe %s: %w", drv.Name(), err)
		}
		live[i] = obs
	}
	return live, nil
}

// partition splits rs by the driver that owns each. Each part is
// allocated at its size: appending 10,000 routes one by one costs more
// than finding their owner twice.
func (e *Engine) partition(rs []plan.Resource) ([][]plan.Resource, error) {
	owner := make([]int, len(rs))
	sizes := make([]int, len(e.Drivers))
next:
	for j, r := range rs {
		r = plan.Unbound(r)
		for i, drv := range e.Drivers {
			if drv.Owns(r) {
				owner[j] = i
				sizes[i]++
				continue next
			}
		}
		return nil, fmt.Errorf("no driver converges %s", r.Address())
	}
	parts := make([][]plan.Resource, len(e.Drivers))
	for i, n := range sizes {
		if n > 0 {
			parts[i] = make([]plan.Resource, 0, n)
		}
	}
	for j, r := range rs {
		parts[owner[j]] = append(parts[owner[j]], plan.Unbound(r))
	}
	return parts, nil
}

// Plan observes the live state and computes the changes to reach d, and
// runs the checkers.
func (e *Engine) Plan(ctx context.Context, d Desired) (*Plan, error) {
	p, err := e.diff(ctx, d)
	if err != nil {
		return nil, err
	}
	for _, c := range e.Checkers {
		p.Warnings = append(p.Warnings, c.Check(ctx, d)...)
	}
	return p, nil
}

// diff observes the live state and computes the changes to reach d.
func (e *Engine) diff(ctx context.Context, d Desired) (*Plan, error) {
	parts, err := e.partition(d.Resources)
	if err != nil {
		return nil, err
	}
	live, err := e.observe(ctx, parts)
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
	// FailedErr is why it was refused.
	FailedErr error
	// RolledBack is set when the applied changes were undone.
	RolledBack bool
}

// Statuses is the status of every object of p after this result: done when
// it needed no change or its change took, error when it was refused or a
// foreign object is in its way, pending otherwise.
func (r *Result) Statuses(p *Plan) []plan.Status {
	changed := make(map[string]plan.State, len(p.Changes))
	for _, c := range p.Changes {
		changed[c.Address()] = plan.Pending
	}
	if !r.RolledBack {
		for _, c := range r.Applied {
			changed[c.Address()] = plan.Done
		}
	}
	conflicts := make(map[string]string, len(p.Conflicts))
	for _, c := range p.Conflicts {
		conflicts[c.Address] = c.String()
	}
	status := func(addr string) plan.Status {
		s := plan.Status{Address: addr, State: plan.Done}
		if st, ok := changed[addr]; ok {
			s.State = st
		}
		if r.Failed != nil && r.Failed.Address() == addr {
			s.State, s.Error = plan.Failed, r.FailedErr.Error()
		}
		if msg, ok := conflicts[addr]; ok {
			s.State, s.Error = plan.Failed, msg
		}
		return s
	}
	out := make([]plan.Status, 0, len(p.Desired.Resources)+len(p.Changes))
	seen := make(map[string]bool, cap(out))
	for _, r := range p.Desired.Resources {
		seen[r.Address()] = true
		out = append(out, status(r.Address()))
	}
	for _, c := range p.Changes {
		if !seen[c.Address()] {
			seen[c.Address()] = true
			out = append(out, status(c.Address()))
		}
	}
	return out
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

// BatchApplier is a Driver that can apply a run of changes faster than one
// by one (for example by pipelining netlink requests).
type BatchApplier interface {
	// ApplyBatch applies changes in order, stopping at the first refused
	// one. It returns how many took effect, and the refusal.
	ApplyBatch(ctx context.Context, changes []plan.Change) (int, error)
}

// Apply performs the plan's changes in order. When a change is refused and
// opts.Rollback is set, the changes already made are undone in reverse
// order.
func (e *Engine) Apply(ctx context.Context, p *Plan, opts ApplyOptions) (*Result, error) {
	res := &Result{}
	n, err := e.applyAll(ctx, p.Changes)
	res.Applied = p.Changes[:n:n]
	if err == nil {
		return res, nil
	}
	if n == len(p.Changes) {
		return res, err // not a refusal: no driver, or cancelled
	}
	fc := p.Changes[n]
	res.Failed, res.FailedErr = &fc, err
	aerr := &ApplyError{Change: fc, Err: err}
	if opts.Rollback && n > 0 {
		aerr.Restored = n
		aerr.RollbackErr = e.rollback(ctx, res.Applied)
		aerr.RolledBack = aerr.RollbackErr == nil
		res.RolledBack = aerr.RolledBack
	}
	return res, aerr
}

// applyAll applies changes in order, each run of one driver's changes at
// once where the driver can, and returns how many took effect before the
// first error.
func (e *Engine) applyAll(ctx context.Context, changes []plan.Change) (int, error) {
	done := 0
	for done < len(changes) {
		if err := ctx.Err(); err != nil {
			return done, err
		}
		drv, err := e.driverFor(changes[done].Resource())
		if err != nil {
			return done, err
		}
		end := done + 1
		for end < len(changes) && drv.Owns(changes[end].Resource()) {
			end++
		}
		n, err := applyRun(ctx, drv, changes[done:end])
		done += n
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

func applyRun(ctx context.Context, drv Driver, run []plan.Change) (int, error) {
	if b, ok := drv.(BatchApplier); ok {
		return b.ApplyBatch(ctx, run)
	}
	for i, c := range run {
		if err := drv.Apply(ctx, c); err != nil {
			return i, err
		}
	}
	return len(run), nil
}

// rollback undoes applied changes in reverse order, trying every one and
// joining the errors.
func (e *Engine) rollback(ctx context.Context, applied []plan.Change) error {
	ctx = context.WithoutCancel(ctx)
	inverse := make([]plan.Change, len(applied))
	for i, c := range applied {
		inverse[len(applied)-1-i] = c.Inverse()
	}
	var errs []error
	for len(inverse) > 0 {
		n, err := e.applyAll(ctx, inverse)
		if err == nil {
			break
		}
		if n == len(inverse) {
			errs = append(errs, err)
			break
		}
		errs = append(errs, fmt.Errorf("undo %s: %w", inverse[n].Address(), err))
		inverse = inverse[n+1:]
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
	p, err := e.diff(ctx, d)
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

// PlanDrivers observes only the named drivers and returns how many changes
// they need to reach d (the daemon polls drivers whose objects the kernel
// sends no events for).
func (e *Engine) PlanDrivers(ctx context.Context, d Desired, names []string) (int, error) {
	parts, err := e.partition(d.Resources)
	if err != nil {
		return 0, err
	}
	n := 0
	for i, drv := range e.Drivers {
		if !slices.Contains(names, drv.Name()) {
			continue
		}
		live, err := drv.Observe(ctx, parts[i])
		if err != nil {
			return 0, fmt.Errorf("observe %s: %w", drv.Name(), err)
		}
		changes, _ := plan.Diff(parts[i], live)
		n += len(changes)
	}
	return n, nil
}

// ConvergeOptions are the hooks of one plan -> apply -> verify run, the
// one workflow the CLI's apply and destroy, the confirm reverter and the
// daemon share.
type ConvergeOptions struct {
	// Rollback undoes this run's changes when the kernel refuses one (the
	// CLI); otherwise what took stays and the caller retries (the daemon).
	Rollback bool
	// BeforeApply sees the plan before anything is written (print it,
	// ask, check the SSH session); an error cancels the run. It is not
	// called for an empty plan.
	BeforeApply func(*Plan) error
	// AfterApply checks the applied run (the SSH session's path); an
	// error undoes the run when Rollback is set.
	AfterApply func(*Plan, *Result) error
	// BeforeVerify runs between apply and verify (the daemon drains the
	// notifications of its own writes).
	BeforeVerify func()
}

// Converge plans the changes from the live state to d, applies them and
// verifies the result. It returns the plan (nil only when planning
// failed) and what the apply did (nil when nothing was applied). Conflicts
// are not errors here: the plan carries them. Only a writer converges:
// the drivers' ownership records forget what the plan's observation found
// gone from the kernel (RecordPruner), even when there is nothing to
// apply.
func (e *Engine) Converge(ctx context.Context, d Desired, opts ConvergeOptions) (*Plan, *Result, error) {
	p, err := e.Plan(ctx, d)
	if err != nil {
		return nil, nil, err
	}
	for _, drv := range e.Drivers {
		if pr, ok := drv.(RecordPruner); ok {
			if err := pr.PruneRecord(); err != nil {
				return p, nil, fmt.Errorf("%s: forget what the kernel removed: %w", drv.Name(), err)
			}
		}
	}
	if len(p.Changes) == 0 {
		return p, nil, nil
	}
	if opts.BeforeApply != nil {
		if err := opts.BeforeApply(p); err != nil {
			return p, nil, err
		}
	}
	res, err := e.Apply(ctx, p, ApplyOptions{Rollback: opts.Rollback})
	if err != nil {
		return p, res, err
	}
	if opts.AfterApply != nil {
		if err := opts.AfterApply(p, res); err != nil {
			if !opts.Rollback {
				return p, res, err
			}
			if rerr := e.Rollback(ctx, res.Applied); rerr != nil {
				return p, res, fmt.Errorf("%w; restoring failed: %w", err, rerr)
			}
			res.RolledBack = true
			return p, res, fmt.Errorf("%w; restored the %d changes of this run", err, len(res.Applied))
		}
	}
	if opts.BeforeVerify != nil {
		opts.BeforeVerify()
	}
	return p, res, e.Verify(ctx, d)
}
