package nftables

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	gnft "github.com/google/nftables"
	"github.com/google/nftables/expr"

	"github.com/braid-router/braid/drivers/failpoint"
	"github.com/braid-router/braid/drivers/prefetch"
	"github.com/braid-router/braid/reconcile/plan"
)

// Options configures a Driver.
type Options struct {
	// Writes counts kernel writes; nil counts nothing. A transaction is
	// one write to the kernel, but it is counted once per change it
	// carried, when it commits: a change counts as written once it took
	// effect, as with the other drivers, so that BRAID_FAILPOINT_WRITES=N
	// still means "the Nth change" to a test that counts a plan's lines.
	Writes *failpoint.Counter
	// Log receives one line per applied change; nil discards.
	Log *slog.Logger
}

// Driver converges braid's nftables table. It implements
// reconcile.Driver, reconcile.BatchApplier and reconcile.Prefetcher. Its methods are safe for
// concurrent use, though the engine calls them one at a time.
type Driver struct {
	writes *failpoint.Counter
	log    *slog.Logger
	// err is why the sockets could not be opened; every call returns it.
	err  error
	conn *gnft.Conn

	mu sync.Mutex // serialises transactions on tx
	tx *txConn
	// dump reads the elements of sets.
	dump *dumpConn

	// pre is the read Prefetch is taking for the next Observe.
	pre prefetch.Slot[*live]
}

// New returns a driver whose sockets are in the network namespace of the
// calling thread: braid runs the driver inside the namespace it converges.
// If they cannot be opened, every call of the driver returns why.
func New(opts Options) *Driver {
	d := &Driver{writes: opts.Writes, log: opts.Log}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	conn, err := gnft.New(gnft.AsLasting())
	if err != nil {
		d.err = fmt.Errorf("nftables driver: open netfilter socket: %w", err)
		return d
	}
	tx, err := dialTx()
	if err != nil {
		conn.CloseLasting()
		d.err = fmt.Errorf("nftables driver: %w", err)
		return d
	}
	dump, err := dialDump()
	if err != nil {
		conn.CloseLasting()
		tx.close()
		d.err = fmt.Errorf("nftables driver: %w", err)
		return d
	}
	d.conn, d.tx, d.dump = conn, tx, dump
	return d
}

// Close releases the driver's sockets.
func (d *Driver) Close() error {
	d.pre.Drop(d.log)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.tx == nil {
		return nil
	}
	err := errors.Join(d.conn.CloseLasting(), d.tx.close(), d.dump.close())
	d.tx = nil
	d.err = errors.New("nftables driver: closed")
	return err
}

// Name implements reconcile.Driver.
func (d *Driver) Name() string { return "nftables" }

// Owns implements reconcile.Driver: braid's table, its chains, sets and
// rules.
func (d *Driver) Owns(r plan.Resource) bool {
	switch r.(type) {
	case Table, Chain, Set, Rule:
		return true
	}
	return false
}

// Observe implements reconcile.Driver. It reads braid's table only (see
// read) and returns, in apply order, the table, its chains, its sets and
// its rules, compared with desired (see observe). Everything in the table
// is braid's: nothing is foreign, and nothing outside it is returned.
func (d *Driver) Observe(ctx context.Context, desired []plan.Resource) ([]plan.Observed, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := d.failed(); err != nil {
		return nil, err
	}
	l, ok := d.pre.Take(d.log)
	if !ok {
		var err error
		if l, err = d.read(func(string) bool { return true }); err != nil {
			return nil, fmt.Errorf("nftables driver: %w", err)
		}
	}
	return observe(l, split(desired)), nil
}

// failed returns why the driver cannot be used (its sockets could not be
// opened, or it is closed), or nil.
func (d *Driver) failed() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.err
}

// Apply implements reconcile.Driver: a transaction of one change.
func (d *Driver) Apply(ctx context.Context, c plan.Change) error {
	_, err := d.ApplyBatch(ctx, []plan.Change{c})
	return err
}

// ApplyBatch implements reconcile.BatchApplier: it applies a run of
// changes as one atomic transaction, built against the table as it is
// now (read again, so that deletes name live handles; sets change by the
// difference between their observed and desired elements). Either every change takes effect or none
// does: a refusal returns 0 and a *RefusedError naming the refused
// changes with the kernel's reasons.
func (d *Driver) ApplyBatch(ctx context.Context, changes []plan.Change) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if len(changes) == 0 {
		return 0, nil
	}
	for _, c := range changes {
		if !d.Owns(c.Resource()) {
			return 0, fmt.Errorf("nftables driver: %s: not an nftables resource (%T)", c.Address(), c.Resource())
		}
	}
	d.pre.Drop(d.log)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.err != nil {
		return 0, d.err
	}
	// The elements of a set to update are those of the observation the
	// plan was made from (the engine plans and applies under the
	// namespace's lock): reading a large set again would cost more than
	// the change. Those of a set to create are read, in case it exists.
	observed := map[string][]Range{}
	need := map[string]bool{}
	for _, c := range changes {
		s, ok := c.Resource().(Set)
		if !ok || c.Action == plan.Delete {
			continue
		}
		if before, ok := c.Before.(Set); ok && c.Action == plan.Update {
			observed[s.Name] = before.Elements
		} else {
			need[s.Name] = true
		}
	}
	l, err := d.read(func(name string) bool { return need[name] })
	if err != nil {
		return 0, fmt.Errorf("nftables driver: %w", err)
	}
	for i, s := range l.sets {
		if e, ok := observed[s.Name]; ok {
			l.sets[i].Elements = e
		}
	}
	t, err := build(changes, l)
	if err != nil {
		return 0, fmt.Errorf("nftables driver: %w", err)
	}
	if d.writes.RefuseNftables() {
		// A test's failpoint: a jump to a chain that does not exist makes
		// the kernel refuse the whole transaction.
		missing := &gnft.Chain{Name: "braid-failpoint-missing", Table: braidTable()}
		if err := t.emit(len(changes)-1, func(c *gnft.Conn) error {
			c.AddRule(&gnft.Rule{Table: braidTable(), Chain: &gnft.Chain{Name: ChainInput, Table: braidTable()},
				Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: missing.Name}}})
			return nil
		}); err != nil {
			return 0, fmt.Errorf("nftables driver: %w", err)
		}
	}
	refused, err := d.tx.commit(t.msgs)
	switch {
	case len(refused) > 0:
		return 0, fmt.Errorf("nftables driver: %w", refusal(changes, t, refused))
	case err != nil:
		return 0, fmt.Errorf("nftables driver: transaction of %d changes: %w", len(changes), err)
	}
	wrote := len(t.msgs) > 0
	for _, c := range changes {
		if wrote {
			d.writes.Wrote()
		}
		if d.log.Enabled(ctx, slog.LevelInfo) {
			if wrote {
				d.log.InfoContext(ctx, "applied", "change", string(c.Action), "object", c.Address())
			} else {
				d.log.InfoContext(ctx, "applied", "change", string(c.Action), "object", c.Address(), "already", true)
			}
		}
	}
	return len(changes), nil
}
