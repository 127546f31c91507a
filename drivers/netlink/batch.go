package netlink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/braid-router/braid/drivers/record"
	"github.com/braid-router/braid/reconcile/plan"
)

// ApplyBatch implements reconcile.BatchApplier: it applies changes with the
// semantics of Apply, in order, and stops at the first refused change. It
// returns how many changes took effect before it, and the refusal; the
// changes after it have not (see below for how that is kept true).
//
// Route creates, updates and deletes and rule creates and deletes go to the
// kernel pipelined: up to maxBatch requests per sendmsg, each with its own
// sequence number and acknowledgement. Every other change (links, sysctls,
// addresses, rule updates, a route whose link is not in the index cache)
// goes through Apply on its own, in its place in the order, and the
// pipelined runs between them never cross it.
//
// A long pipelined run that holds both families is applied in two lanes,
// IPv4 and IPv6, side by side over two sockets, each lane in the order of
// the run. Nothing of one family depends on the other in the kernel (a
// route's gateway and preferred source are of its own family, a rule
// selects one family), so only the interleaving changes, and the kernel
// applies the two families' route writes in parallel (on Linux 6.18, 10,000
// routes took about 50 ms in one lane and 31 to 48 ms in two, on a busy
// machine). A short run, or one of a single family, is one lane in exact
// order. After a refusal, the other lane may have gone further than
// the refused change before it noticed: all of that is undone too.
//
// A request the kernel refused within a batch goes through Apply again, on
// its own and after the requests that followed it in its batch: that tells
// "already so" (EEXIST from braid's own equal object) from braid's own
// object to bring in line and from a foreign one (a route or rule dump, on
// this rare path only), and retries with a fresh interface index. ENOENT
// or ESRCH on a delete is "already so" at once.
//
// The kernel does not stop at a refused request: by the time a refusal is
// read, the requests after it in its batch have been made, and the other
// lane may have gone further. ApplyBatch keeps the contract ("the first n
// took effect, the rest did not") by undoing, in reverse order, every
// change after the refused one that took effect, before it returns. The
// state is then exactly that of the first n changes applied, which the
// engine's rollback can restore and a new plan shows the rest of. Every
// write that took effect is counted (opts.Writes) as its acknowledgement is
// read, and every undo too; the failpoint may end the process in between,
// which is safe because braid's routes and rules are owned by protocol
// number, not by the record, so the next apply converges whatever was
// left. If an undo is refused too, the error says so, and the objects it
// left are braid's own, which the next plan shows.
//
// When the acknowledgements of a batch cannot be read (a receive error),
// the change whose acknowledgement was the first not read is the refused
// one, and it and every later change are undone the same way: an undo of a
// request that did not take is "already so".
//
// Each change that took effect is logged at Info, in order, once the run is
// accounted for.
//
// The ownership record is written twice for the whole batch, not once per
// change (see writeAhead and record.Batch): before the first kernel write,
// with the entries of every link, sysctl and address the batch changes and
// the removal of stale entries; and after the last, with the removals that
// follow its deletes, and of the entries written ahead for changes it did
// not get to.
func (d *Driver) ApplyBatch(ctx context.Context, changes []plan.Change) (applied int, err error) {
	d.pre.Drop(d.log)
	b := d.rec.Batch()
	tried := 0 // the changes from here on were not attempted
	defer func() {
		err = errors.Join(err, b.End(tried))
	}()
	if err := d.PruneRecord(); err != nil {
		return 0, err
	}
	if err := d.writeAhead(b, changes); err != nil {
		return 0, err
	}
	done := 0
	for done < len(changes) {
		if err := ctx.Err(); err != nil {
			return done, err
		}
		n := 0
		if d.raw != nil {
			// With a caller's handle, no pipelining.
			n = d.pipelinable(changes[done:])
		}
		if n == 0 {
			tried = done + 1
			if err := d.Apply(ctx, changes[done]); err != nil {
				return done, err
			}
			done++
			continue
		}
		k, err := d.applyRun(ctx, changes[done:done+n])
		done += k
		tried = done
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

// writeAhead writes the record entries of a whole batch in one write,
// before its first kernel write (record.Batch): the previous state of
// every link and sysctl it creates or updates (kept if one is recorded:
// the first is the one to restore) and every address it adds, with the
// removals of stale entries pending (PruneRecord). The entries are those
// Apply would write before each of those changes, read from the kernel now
// rather than just before the change: for a batch, the state before its
// first write. Apply then finds each entry recorded and writes nothing; a
// change for which no entry can be computed now (its link is missing) is
// left to Apply, which fails or writes its entry itself.
//
// Apply tells an address braid recorded before this batch from one only
// written ahead (record.WroteAhead), and the batch's End drops those of
// changes the batch did not get to.
func (d *Driver) writeAhead(b *record.Batch, changes []plan.Change) error {
	for i, c := range changes {
		if c.Action == plan.Delete {
			continue
		}
		switch r := c.Resource().(type) {
		case Link:
			lk, err := d.h.LinkByName(r.Name)
			if err != nil {
				continue
			}
			b.Add(i, record.Entry{Kind: KindLink, Key: r.Name, Value: stateOf(lk), IfAbsent: true})
		case Sysctl:
			cur, err := d.readSysctl(r.Name)
			if err != nil {
				continue
			}
			b.Add(i, record.Entry{Kind: KindSysctl, Key: r.Name, Value: cur, IfAbsent: true})
		case Addr:
			if c.Action != plan.Create {
				continue // an update writes nothing
			}
			if _, err := d.ifindex(r.Link); err != nil {
				continue
			}
			b.Add(i, record.Entry{Kind: KindAddress, Key: r.recordKey(), Value: struct{}{}})
		}
	}
	return b.WriteAhead()
}

// pipelinable returns how many leading changes can be pipelined: route
// creates, updates and deletes (a create or update only if its link's index
// is cached), rule creates and deletes (of a rule kernelRule accepts).
func (d *Driver) pipelinable(changes []plan.Change) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, c := range changes {
		switch r := c.Resource().(type) {
		case Route:
			if c.Action == plan.Delete {
				continue
			}
			if _, ok := d.index[r.Link]; ok && (c.Action == plan.Create || c.Action == plan.Update) {
				continue
			}
		case Rule:
			if _, err := kernelRule(r); err == nil && (c.Action == plan.Create || c.Action == plan.Delete) {
				continue
			}
		}
		return i
	}
	return len(changes)
}

// ackState is what became of one change of a pipelined run.
type ackState uint8

const (
	pending ackState = iota // not sent: a refusal came first
	lost                    // sent, but its acknowledgement was not read
	took                    // it took effect: it wrote
	already                 // it was already so: nothing written
	refused                 // the kernel refused it
)

// run is the accounting of one pipelined run.
type run struct {
	changes []plan.Change
	state   []ackState

	mu sync.Mutex
	// fail is the index of the first refused change so far, len(changes)
	// if none; failErr is its refusal.
	fail    int
	failErr error
}

// refuse records a refusal of change i.
func (r *run) refuse(i int, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if i < r.fail {
		r.fail, r.failErr = i, err
	}
}

// failed returns the index of the first refused change so far.
func (r *run) failed() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fail
}

// Lanes: a run of at least minLanes changes of which at least minLane are
// of each family is applied in two lanes.
const (
	minLanes = 4 * maxBatch
	minLane  = maxBatch
)

// applyRun applies a run of pipelinable changes; see ApplyBatch.
func (d *Driver) applyRun(ctx context.Context, changes []plan.Change) (int, error) {
	r := &run{changes: changes, state: make([]ackState, len(changes)), fail: len(changes)}
	all := make([]int32, len(changes))
	var v4, v6 []int32
	for i := range changes {
		all[i] = int32(i)
	}
	if len(changes) >= minLanes {
		for i, c := range changes {
			if isV6(c.Resource()) {
				v6 = append(v6, int32(i))
			} else {
				v4 = append(v4, int32(i))
			}
		}
	}
	if len(v4) >= minLane && len(v6) >= minLane {
		var wg sync.WaitGroup
		wg.Go(func() { d.lane(ctx, d.raw6, r, v6) })
		d.lane(ctx, d.raw, r, v4)
		wg.Wait()
	} else {
		d.lane(ctx, d.raw, r, all)
	}

	n := r.fail
	for i := range n {
		d.logApplied(ctx, changes[i], r.state[i] == took)
	}
	if n == len(changes) {
		return n, nil
	}
	// Undo, in reverse order, what took effect after the refused change,
	// or may have (an acknowledgement lost, maybe the refused change's
	// own).
	var errs []error
	for i := len(changes) - 1; i >= n; i-- {
		if st := r.state[i]; st != took && st != lost {
			continue
		}
		c := changes[i]
		// The inverse of a request that did not take is "already so": a
		// delete meets ENOENT, a create meets braid's equal object, an
		// update's inverse writes the state that is still there.
		if _, err := d.apply(c.Inverse()); err != nil {
			errs = append(errs, fmt.Errorf("undo %s %s: %w", c.Action, c.Address(), err))
			continue
		}
		d.log.DebugContext(ctx, "undone: it followed a refused change in its batch", "change", string(c.Action), "object", c.Address())
	}
	err := r.failErr
	if uerr := errors.Join(errs...); uerr != nil {
		err = fmt.Errorf("%w; and undoing the later changes of its batch failed, leaving braid's own objects that the next plan shows: %w", err, uerr)
	}
	return n, err
}

// isV6 reports whether a route or rule is IPv6.
func isV6(r plan.Resource) bool {
	switch r := r.(type) {
	case Route:
		return r.Dst.Addr().Is6()
	case Rule:
		return r.Family() == "inet6"
	}
	return false
}

// lane applies the changes of r at the given indexes, in order, in batches
// over c, until they are done or one of them, or of the other lane, is
// refused before the next batch.
func (d *Driver) lane(ctx context.Context, c *conn, r *run, idx []int32) {
	bt := &batch{b: make([]byte, 0, maxBatchBytes+512), msgs: make([]msg, 0, maxBatch)}
	errs := make([]error, maxBatch)
	for len(idx) > 0 {
		if int(idx[0]) > r.failed() {
			return // everything from here on would be undone
		}
		if err := ctx.Err(); err != nil {
			r.refuse(int(idx[0]), err)
			return
		}
		n := d.fillBatch(bt, r.changes, idx)
		if n == 0 {
			// Its link's index is no longer cached: on its own.
			d.resolve(r, int(idx[0]))
			idx = idx[1:]
			continue
		}
		sent := idx[:n]
		idx = idx[n:]
		got, rerr := c.pipeline(bt, errs[:n])
		for j, k := range sent {
			i := int(k)
			ch := r.changes[i]
			if j >= got {
				// The acknowledgements from here on were lost: the
				// requests may or may not have taken effect.
				r.state[i] = lost
				if j == got {
					r.refuse(i, fmt.Errorf("%s %s: the kernel's answer was lost (%w)", ch.Action, ch.Address(), rerr))
				}
				continue
			}
			switch err := errs[j]; {
			case err == nil:
				r.state[i] = took
				d.wrote()
			case ch.Action == plan.Delete && isGone(err):
				r.state[i] = already
			case i > r.failed():
				// After a refusal: it did not take, and need not.
				r.state[i] = refused
			default:
				// Refused in the batch: once more on its own.
				d.resolve(r, i)
			}
		}
		if got < n {
			return
		}
	}
}

// resolve applies change i of r on its own, with Apply's semantics: it
// tells "already so", braid's own object and a foreign one apart, and
// retries with a fresh interface index.
func (d *Driver) resolve(r *run, i int) {
	wrote, err := d.apply(r.changes[i])
	switch {
	case err != nil:
		r.state[i] = refused
		r.refuse(i, err)
	case wrote:
		r.state[i] = took
	default:
		r.state[i] = already
	}
}

// fillBatch encodes into bt the requests of the leading changes at idx
// that fit in one batch, and returns how many.
func (d *Driver) fillBatch(bt *batch, changes []plan.Change, idx []int32) int {
	bt.reset()
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, i := range idx {
		if bt.full() {
			break
		}
		c := changes[i]
		switch r := c.Resource().(type) {
		case Route:
			if c.Action == plan.Delete {
				m := bt.add(unix.RTM_DELROUTE, 0)
				appendRoute(m, unix.RTM_DELROUTE, r, 0)
				bt.done(m)
				continue
			}
			index, ok := d.index[r.Link]
			if !ok {
				// Forgotten since pipelinable looked (the other lane
				// met ENODEV): the lane applies it on its own.
				return len(bt.msgs)
			}
			flags := uint16(unix.NLM_F_CREATE | unix.NLM_F_EXCL)
			if c.Action == plan.Update {
				flags = unix.NLM_F_CREATE | unix.NLM_F_REPLACE
			}
			m := bt.add(unix.RTM_NEWROUTE, flags)
			appendRoute(m, unix.RTM_NEWROUTE, r, index)
			bt.done(m)
		case Rule:
			typ, flags := uint16(unix.RTM_NEWRULE), uint16(unix.NLM_F_CREATE|unix.NLM_F_EXCL)
			if c.Action == plan.Delete {
				typ, flags = unix.RTM_DELRULE, 0
			}
			m := bt.add(typ, flags)
			appendRule(m, typ, r)
			bt.done(m)
		}
	}
	return len(bt.msgs)
}

// logApplied logs one change at Info.
func (d *Driver) logApplied(ctx context.Context, c plan.Change, wrote bool) {
	if !d.log.Enabled(ctx, slog.LevelInfo) {
		return
	}
	if wrote {
		d.log.InfoContext(ctx, "applied", "change", string(c.Action), "object", c.Address())
	} else {
		d.log.InfoContext(ctx, "applied", "change", string(c.Action), "object", c.Address(), "already", true)
	}
}
