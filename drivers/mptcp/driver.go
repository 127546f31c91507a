package mptcp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/braid-router/braid/drivers/failpoint"
	"github.com/braid-router/braid/drivers/prefetch"
	"github.com/braid-router/braid/drivers/record"
	"github.com/braid-router/braid/reconcile/plan"
)

// Record kinds this driver writes to the ownership record.
const (
	// KindEndpoint entries are keyed by the endpoint's address and hold
	// the kernel id braid gave it ({"id": 3}).
	KindEndpoint = "mptcp.endpoint"
	// KindLimits holds one entry, keyed "previous": the limits from before
	// braid first changed them ({"Subflows": 2, "AddAddrAccepted": 0}).
	KindLimits = "mptcp.limits"
)

// limitsKey is the key of the one KindLimits entry.
const limitsKey = "previous"

// endpointRecord is a KindEndpoint entry.
type endpointRecord struct {
	ID uint8 `json:"id"`
}

// ErrConflict is wrapped by the error Apply returns when an endpoint braid
// did not create holds the address braid wants. It is left alone.
var ErrConflict = errors.New("occupied by a foreign object")

// ErrNoLink is wrapped by errors about an interface that does not exist.
var ErrNoLink = errors.New("no such interface")

// Options configures a Driver.
type Options struct {
	// Record is the ownership record. Required.
	Record *record.Record
	// Writes counts kernel writes; nil counts nothing.
	Writes *failpoint.Counter
	// Log receives one line per applied change; nil discards.
	Log *slog.Logger
}

// Driver converges MPTCP endpoints and limits over the generic netlink
// family mptcp_pm. It implements reconcile.Driver, reconcile.BatchApplier
// and reconcile.Prefetcher. Its methods are safe for concurrent use,
// though the engine calls them one at a time.
type Driver struct {
	rec    *record.Record
	writes *failpoint.Counter
	log    *slog.Logger

	mu sync.Mutex
	// sock is the generic netlink socket to the path manager, opened by
	// New in the driver's namespace; err is why it could not be.
	sock *pm
	err  error
	// ifsock answers interface name and index look-ups (ioctl), in the
	// driver's namespace.
	ifsock int
	// live is the last endpoint dump, kept up to date by Apply's own
	// writes: where ids are free, which addresses hold an implicit
	// endpoint.
	live []kernelEndpoint
	// stale lists the record keys the last Observe found gone from the
	// kernel; the next Apply (or PruneRecord) forgets them.
	stale []string
	// pre is the read Prefetch is taking for the next Observe.
	pre    prefetch.Slot[pmRead]
	closed bool
}

// New returns a driver whose sockets are opened now, in the network
// namespace of the calling thread: braid runs it inside the namespace it
// converges. It never fails itself: what went wrong opening it (no record,
// no socket) is the error of its first Observe or Apply that needs it, so
// that a spec without MPTCP still works where the kernel has none.
func New(opts Options) *Driver {
	d := &Driver{rec: opts.Record, writes: opts.Writes, log: opts.Log, ifsock: -1}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if d.rec == nil {
		d.err = errors.New("mptcp driver: Options.Record is required")
		return d
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		d.err = fmt.Errorf("mptcp driver: open interface socket: %w", err)
		return d
	}
	d.ifsock = fd
	if d.sock, err = dialPM(); err != nil {
		d.err = fmt.Errorf("mptcp driver: %w", err)
	}
	return d
}

// Close releases the driver's sockets.
func (d *Driver) Close() error {
	d.pre.Drop(d.log)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	var err error
	if d.ifsock >= 0 {
		err = unix.Close(d.ifsock)
	}
	if d.sock != nil {
		err = errors.Join(err, d.sock.close())
	}
	return err
}

// conn returns the path manager socket, or why there is none.
func (d *Driver) conn() (*pm, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.closed:
		return nil, errors.New("mptcp driver: closed")
	case d.err != nil:
		return nil, d.err
	}
	return d.sock, nil
}

// Name implements reconcile.Driver.
func (d *Driver) Name() string { return "mptcp" }

// Owns implements reconcile.Driver: endpoints and limits.
func (d *Driver) Owns(r plan.Resource) bool {
	switch r.(type) {
	case Endpoint, Limits:
		return true
	}
	return false
}

// Observe implements reconcile.Driver. With one endpoint dump and one
// limits request it returns, in apply order: the limits (when desired or
// recorded), braid's endpoints (those in the record whose id still holds
// the recorded address), and foreign endpoints at desired addresses. An
// implicit endpoint (the kernel's own) at a desired address is not
// foreign: adding braid's endpoint replaces it. When nothing is desired or
// recorded, the kernel is not asked at all (and a prefetched read is
// discarded).
func (d *Driver) Observe(ctx context.Context, want []plan.Resource) ([]plan.Observed, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var wantEps []Endpoint
	wantLimits := false
	for _, r := range want {
		switch r := r.(type) {
		case Endpoint:
			wantEps = append(wantEps, r)
		case Limits:
			wantLimits = true
		}
	}
	if d.rec == nil {
		return nil, d.err
	}
	pre, prefetched := d.pre.Take(d.log)
	recorded := d.rec.Keys(KindEndpoint)
	limitsRecorded := d.rec.Has(KindLimits, limitsKey)
	if len(wantEps) == 0 && !wantLimits && len(recorded) == 0 && !limitsRecorded {
		d.setStale(nil)
		return nil, nil
	}
	p, err := d.conn()
	if err != nil {
		return nil, err
	}
	var live []kernelEndpoint
	if prefetched {
		live = pre.live
		d.mu.Lock()
		d.live = live
		d.mu.Unlock()
	} else if live, err = d.refresh(p); err != nil {
		return nil, err
	}
	var out []plan.Observed
	if wantLimits || limitsRecorded {
		l := Limits{}
		if prefetched {
			l = pre.limits
		} else if l, err = p.limits(); err != nil {
			return nil, err
		}
		out = append(out, plan.Observed{Resource: l})
	}
	byID := make(map[uint8]kernelEndpoint, len(live))
	for _, k := range live {
		byID[k.ID] = k
	}
	owned := map[netip.Addr]bool{}
	var stale []string
	var mine []kernelEndpoint
	for _, key := range recorded {
		k, ok, err := d.recorded(key, byID)
		if err != nil {
			return nil, err
		}
		if !ok {
			stale = append(stale, key)
			continue
		}
		owned[k.Addr] = true
		mine = append(mine, k)
	}
	// In id order, which is the order braid added them in (it picks the
	// lowest free id), so deletes run in reverse.
	slices.SortFunc(mine, func(a, b kernelEndpoint) int { return int(a.ID) - int(b.ID) })
	for _, k := range mine {
		out = append(out, plan.Observed{Resource: d.endpointOf(k)})
	}
	for _, w := range wantEps {
		if owned[w.Addr] {
			continue
		}
		if k, ok := atAddr(live, w.Addr); ok && k.Flags&FlagImplicit == 0 {
			out = append(out, plan.Observed{Resource: foreignEndpoint{Endpoint: d.endpointOf(k), ID: k.ID, Port: k.Port}, Foreign: true})
		}
	}
	d.setStale(stale)
	return out, nil
}

// recorded looks up the live endpoint of a record entry: the one with the
// recorded id, if it still holds the recorded address. Anything else means
// braid's endpoint is gone (a foreign one may hold the address or the id
// now).
func (d *Driver) recorded(key string, byID map[uint8]kernelEndpoint) (kernelEndpoint, bool, error) {
	var r endpointRecord
	if _, err := d.rec.Get(KindEndpoint, key, &r); err != nil {
		return kernelEndpoint{}, false, err
	}
	a, err := netip.ParseAddr(key)
	if err != nil || r.ID == 0 {
		return kernelEndpoint{}, false, nil // not an entry braid writes: forget it
	}
	k, ok := byID[r.ID]
	if !ok || k.Addr != a || k.Port != 0 || k.Flags&FlagImplicit != 0 {
		return kernelEndpoint{}, false, nil
	}
	return k, true, nil
}

// atAddr finds the endpoint without a port that holds an address: the
// one an endpoint braid adds (never with a port) collides with.
func atAddr(live []kernelEndpoint, a netip.Addr) (kernelEndpoint, bool) {
	for _, k := range live {
		if k.Addr == a && k.Port == 0 {
			return k, true
		}
	}
	return kernelEndpoint{}, false
}

// endpointOf renders a kernel endpoint as a resource.
func (d *Driver) endpointOf(k kernelEndpoint) Endpoint {
	return Endpoint{Addr: k.Addr, Dev: d.ifname(k.IfIndex), Flags: k.Flags}
}

// refresh dumps the endpoints and keeps the dump for choosing ids.
func (d *Driver) refresh(p *pm) ([]kernelEndpoint, error) {
	live, err := p.endpoints()
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.live = live
	d.mu.Unlock()
	return live, nil
}

func (d *Driver) setStale(keys []string) {
	d.mu.Lock()
	d.stale = keys
	d.mu.Unlock()
}

// PruneRecord forgets the record entries of endpoints that the last
// Observe found gone from the kernel (deleted by hand, or replaced).
// Apply calls it; a read-only plan must not.
func (d *Driver) PruneRecord() error {
	d.mu.Lock()
	stale := d.stale
	d.stale = nil
	d.mu.Unlock()
	for _, k := range stale {
		if err := d.rec.Delete(KindEndpoint, k); err != nil {
			return err
		}
	}
	return nil
}

// Apply implements reconcile.Driver: it performs one change. A create of
// an endpoint braid already has and a delete of one that is gone are
// "already so". A create that collides with a foreign endpoint fails with
// an error wrapping ErrConflict and leaves it alone.
func (d *Driver) Apply(ctx context.Context, c plan.Change) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := d.conn()
	if err != nil {
		return err
	}
	d.pre.Drop(d.log)
	if err := d.PruneRecord(); err != nil {
		return err
	}
	var wrote bool
	switch r := c.Resource().(type) {
	case Endpoint:
		if c.Action == plan.Delete {
			wrote, err = d.deleteEndpoint(p, r)
		} else {
			wrote, err = d.ensureEndpoint(p, r)
		}
	case Limits:
		wrote, err = d.applyLimits(p, c.Action, r)
	default:
		return fmt.Errorf("mptcp driver: %s: not an MPTCP resource (%T)", c.Address(), c.Resource())
	}
	if err != nil {
		return err
	}
	if d.log.Enabled(ctx, slog.LevelInfo) {
		if wrote {
			d.log.InfoContext(ctx, "applied", "change", string(c.Action), "object", c.Address())
		} else {
			d.log.InfoContext(ctx, "applied", "change", string(c.Action), "object", c.Address(), "already", true)
		}
	}
	return nil
}

// ApplyBatch implements reconcile.BatchApplier: it applies changes in
// order with the semantics of Apply, and stops at the first refused one,
// returning how many took effect before it.
//
// The ownership record is written twice for the whole batch
// (record.Batch), not once per change (the write-ahead of eight endpoints
// took eight synced writes, more than the kernel writes themselves):
// before the first kernel write, with the id of every endpoint the batch
// adds, the previous limits and the removal of stale entries (see
// writeAhead); and after the last, with the removals that follow its
// deletes, and of the entries written ahead for changes it did not get to.
func (d *Driver) ApplyBatch(ctx context.Context, changes []plan.Change) (applied int, err error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	p, err := d.conn()
	if err != nil {
		return 0, err
	}
	d.pre.Drop(d.log)
	b := d.rec.Batch()
	tried := 0 // the changes from here on were not attempted
	defer func() {
		err = errors.Join(err, b.End(tried))
	}()
	if err := d.PruneRecord(); err != nil {
		return 0, err
	}
	if err := d.writeAhead(p, b, changes); err != nil {
		return 0, err
	}
	for i, c := range changes {
		if err := ctx.Err(); err != nil {
			return i, err
		}
		tried = i + 1
		if err := d.Apply(ctx, c); err != nil {
			return i, err
		}
	}
	return len(changes), nil
}

// writeAhead writes, in one write of the record (record.Batch), the
// entries Apply would write before each change of a batch: the id of every
// endpoint it adds (braid has no endpoint at the address; chosen as Apply
// chooses them, in turn, each taking the lowest id free of the kernel's,
// the record's and the ones chosen before it) and the limits from before
// braid first changes them, with the removals of stale entries pending.
// Apply then finds each entry recorded and writes nothing more. Apply
// tells an endpoint braid recorded before this batch from one only written
// ahead (record.WroteAhead), and the batch's End drops those of changes
// the batch did not get to.
func (d *Driver) writeAhead(p *pm, b *record.Batch, changes []plan.Change) error {
	taken := map[uint8]bool{}
	for i, c := range changes {
		if c.Action == plan.Delete {
			continue
		}
		switch r := c.Resource().(type) {
		case Endpoint:
			key := r.Addr.String()
			if d.rec.Has(KindEndpoint, key) {
				continue // braid's endpoint, live (PruneRecord forgot those gone): fixed in place
			}
			if _, err := d.ifindex(r.Dev); err != nil {
				continue // Apply fails before recording anything
			}
			id, takeover, err := d.chooseID(r.Addr, taken)
			if err != nil {
				continue // Apply says so
			}
			if !takeover {
				taken[id] = true
			}
			b.Add(i, record.Entry{Kind: KindEndpoint, Key: key, Value: endpointRecord{ID: id}})
		case Limits:
			if d.rec.Has(KindLimits, limitsKey) || r.Subflows > MaxLimit || r.AddAddrAccepted > MaxLimit {
				continue
			}
			cur, err := p.limits()
			if err != nil {
				continue // Apply fails the same way
			}
			b.Add(i, record.Entry{Kind: KindLimits, Key: limitsKey, Value: cur, IfAbsent: true})
		}
	}
	return b.WriteAhead()
}

// wrote counts one kernel write that took effect.
func (d *Driver) wrote() { d.writes.Wrote() }

// settable are the flags SET_FLAGS changes in place.
const settable = FlagBackup | FlagFullmesh

// ensureEndpoint makes braid's endpoint at e's address have e's interface
// and flags: nothing if it has them, SET_FLAGS when only backup or
// fullmesh differ, delete and add again (same id) when the interface
// differs, add when braid has none there.
func (d *Driver) ensureEndpoint(p *pm, e Endpoint) (bool, error) {
	ifindex, err := d.ifindex(e.Dev)
	if err != nil {
		return false, fmt.Errorf("add %s: %w", e.Address(), err)
	}
	key := e.Addr.String()
	var r endpointRecord
	had, err := d.rec.Get(KindEndpoint, key, &r)
	if err != nil {
		return false, err
	}
	// An id written ahead for this batch is for createEndpoint: no
	// endpoint of braid's holds it yet.
	if had && r.ID != 0 && !d.rec.WroteAhead(KindEndpoint, key) {
		k, ok, err := p.endpoint(r.ID)
		if err != nil {
			return false, fmt.Errorf("add %s: %w", e.Address(), err)
		}
		if ok && k.Addr == e.Addr && k.Port == 0 && k.Flags&FlagImplicit == 0 {
			return d.fixEndpoint(p, e, k, ifindex)
		}
	}
	return d.createEndpoint(p, e, ifindex)
}

// fixEndpoint brings braid's live endpoint k to e.
func (d *Driver) fixEndpoint(p *pm, e Endpoint, k kernelEndpoint, ifindex int32) (bool, error) {
	if k.IfIndex == ifindex && k.Flags == e.Flags {
		return false, nil
	}
	if k.IfIndex == ifindex && k.Flags&^settable == e.Flags&^settable {
		if err := p.setFlags(k.ID, e.Flags); err != nil {
			return false, fmt.Errorf("change flags of %s (id %d): %w", e.Address(), k.ID, err)
		}
		d.wrote()
		d.remember(kernelEndpoint{ID: k.ID, Addr: e.Addr, Flags: e.Flags, IfIndex: ifindex})
		return true, nil
	}
	// The record keeps the id: a crash between the two writes leaves a
	// stale entry, and the next pass adds the endpoint again.
	if err := p.del(k.ID); err != nil && !isNotFound(err) {
		return false, fmt.Errorf("move %s (id %d): delete: %w", e.Address(), k.ID, err)
	}
	d.wrote()
	d.forgetLive(k.ID)
	nk := kernelEndpoint{ID: k.ID, Addr: e.Addr, Flags: e.Flags, IfIndex: ifindex}
	if err := p.add(nk); err != nil {
		return true, fmt.Errorf("move %s (id %d): add: %w", e.Address(), k.ID, err)
	}
	d.wrote()
	d.remember(nk)
	return true, nil
}

// addAttempts bounds the retries of an add whose id was taken, or whose
// address gained an implicit endpoint, since the last dump.
const addAttempts = 3

// createEndpoint adds braid's endpoint for e: it picks an id (the implicit
// endpoint's, if the kernel has one at the address, else the lowest free
// one), records it, and adds the endpoint with it.
func (d *Driver) createEndpoint(p *pm, e Endpoint, ifindex int32) (bool, error) {
	key := e.Addr.String()
	var lastErr error
	for attempt := range addAttempts {
		if attempt > 0 {
			if _, err := d.refresh(p); err != nil {
				return false, fmt.Errorf("add %s: %w", e.Address(), err)
			}
		}
		id, takeover, err := d.chooseID(e.Addr, nil)
		if err != nil {
			return false, fmt.Errorf("add %s: %w", e.Address(), err)
		}
		// Write-ahead: the id is on disk before the endpoint exists.
		if err := d.rec.Put(KindEndpoint, key, endpointRecord{ID: id}); err != nil {
			return false, err
		}
		k := kernelEndpoint{ID: id, Addr: e.Addr, Flags: e.Flags, IfIndex: ifindex}
		if takeover {
			k.ID = 0 // the kernel refuses an id when replacing an implicit endpoint
		}
		err = p.add(k)
		if err == nil {
			d.wrote()
			k.ID = id
			if takeover {
				if k, err = d.confirmID(p, e, id); err != nil {
					return true, err
				}
			}
			d.remember(k)
			return true, nil
		}
		// Nothing took effect: do not claim the address.
		if derr := d.rec.Delete(KindEndpoint, key); derr != nil {
			return false, errors.Join(err, derr)
		}
		switch {
		case errors.Is(err, unix.EEXIST):
			return false, fmt.Errorf("add %s: %w (an endpoint braid did not create); left alone", e.Address(), ErrConflict)
		case errors.Is(err, unix.ERANGE):
			return false, fmt.Errorf("add %s: %w: the namespace already holds the kernel's maximum of %d endpoints", e.Address(), err, MaxEndpoints)
		case errors.Is(err, unix.EBUSY), errors.Is(err, unix.EINVAL):
			lastErr = err // the id or the address changed hands: look again
			continue
		}
		return false, fmt.Errorf("add %s: %w", e.Address(), err)
	}
	return false, fmt.Errorf("add %s: %w", e.Address(), lastErr)
}

// confirmID finds the id the kernel gave an endpoint that replaced an
// implicit one (normally the implicit one's, which was recorded) and
// records it if it differs.
func (d *Driver) confirmID(p *pm, e Endpoint, id uint8) (kernelEndpoint, error) {
	live, err := d.refresh(p)
	if err != nil {
		return kernelEndpoint{}, fmt.Errorf("add %s: %w", e.Address(), err)
	}
	k, ok := atAddr(live, e.Addr)
	if !ok {
		return kernelEndpoint{}, fmt.Errorf("add %s: the kernel accepted it but does not list it", e.Address())
	}
	if k.ID != id {
		if err := d.rec.Put(KindEndpoint, e.Addr.String(), endpointRecord{ID: k.ID}); err != nil {
			return kernelEndpoint{}, err
		}
	}
	return k, nil
}

// chooseID picks the id for a new endpoint at a: the id of the implicit
// endpoint the kernel holds there (takeover), else the lowest id that no
// live endpoint, no record entry (but a's own) and no id in taken uses.
func (d *Driver) chooseID(a netip.Addr, taken map[uint8]bool) (id uint8, takeover bool, err error) {
	d.mu.Lock()
	live := d.live
	d.mu.Unlock()
	if k, ok := atAddr(live, a); ok && k.Flags&FlagImplicit != 0 {
		return k.ID, true, nil
	}
	used := make([]bool, 256)
	for _, k := range live {
		used[k.ID] = true
	}
	for id := range taken {
		used[id] = true
	}
	for _, key := range d.rec.Keys(KindEndpoint) {
		if key == a.String() {
			continue // this address's own stale id may be reused
		}
		var r endpointRecord
		if _, err := d.rec.Get(KindEndpoint, key, &r); err == nil {
			used[r.ID] = true
		}
	}
	for i := 1; i < len(used); i++ {
		if !used[i] {
			return uint8(i), false, nil
		}
	}
	return 0, false, errors.New("no free endpoint id")
}

// remember puts an endpoint braid wrote into the kept dump.
func (d *Driver) remember(k kernelEndpoint) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.live = slices.DeleteFunc(slices.Clone(d.live), func(l kernelEndpoint) bool { return l.ID == k.ID || (l.Addr == k.Addr && l.Port == 0) })
	d.live = append(d.live, k)
}

// forgetLive drops an endpoint braid deleted from the kept dump.
func (d *Driver) forgetLive(id uint8) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.live = slices.DeleteFunc(slices.Clone(d.live), func(l kernelEndpoint) bool { return l.ID == id })
}

// deleteEndpoint deletes braid's endpoint at e's address, by its recorded
// id, after checking that the id still holds that address (the kernel
// deletes by id alone, and an id braid used may have been reused by
// someone else since), then forgets the record entry.
func (d *Driver) deleteEndpoint(p *pm, e Endpoint) (bool, error) {
	key := e.Addr.String()
	var r endpointRecord
	had, err := d.rec.Get(KindEndpoint, key, &r)
	if err != nil {
		return false, err
	}
	if !had || r.ID == 0 {
		return false, d.rec.Delete(KindEndpoint, key)
	}
	k, ok, err := p.endpoint(r.ID)
	if err != nil {
		return false, fmt.Errorf("delete %s: %w", e.Address(), err)
	}
	wrote := false
	if ok && k.Addr == e.Addr && k.Port == 0 && k.Flags&FlagImplicit == 0 {
		err := p.del(r.ID)
		switch {
		case err == nil:
			d.wrote()
			wrote = true
		case isNotFound(err):
			// Gone between the look-up and the delete: already so.
		default:
			return false, fmt.Errorf("delete %s (id %d): %w", e.Address(), r.ID, err)
		}
		d.forgetLive(r.ID)
	}
	return wrote, d.rec.Delete(KindEndpoint, key)
}

// applyLimits sets the limits, recording the previous ones first; a delete
// puts the recorded ones back.
func (d *Driver) applyLimits(p *pm, action plan.Action, l Limits) (bool, error) {
	cur, err := p.limits()
	if err != nil {
		return false, err
	}
	if action == plan.Delete {
		var prev Limits
		ok, err := d.rec.Get(KindLimits, limitsKey, &prev)
		if err != nil {
			return false, err
		}
		wrote := false
		if ok && prev != cur {
			if err := p.setLimits(prev); err != nil {
				return false, fmt.Errorf("restore %s to %s: %w", l.Address(), plan.Describe(prev), err)
			}
			d.wrote()
			wrote = true
		}
		return wrote, d.rec.Delete(KindLimits, limitsKey)
	}
	if l.Subflows > MaxLimit || l.AddAddrAccepted > MaxLimit {
		return false, fmt.Errorf("set %s to %s: above the kernel's maximum of %d", l.Address(), plan.Describe(l), MaxLimit)
	}
	if err := d.rec.PutIfAbsent(KindLimits, limitsKey, cur); err != nil {
		return false, err
	}
	if cur == l {
		return false, nil
	}
	if err := p.setLimits(l); err != nil {
		return false, fmt.Errorf("set %s to %s: %w", l.Address(), plan.Describe(l), err)
	}
	d.wrote()
	return true, nil
}

// ifindex returns the index of the named interface; "" is 0 (no
// interface).
func (d *Driver) ifindex(name string) (int32, error) {
	if name == "" {
		return 0, nil
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return 0, fmt.Errorf("link %s: %w", name, err)
	}
	if err := unix.IoctlIfreq(d.ifsock, unix.SIOCGIFINDEX, ifr); err != nil {
		if errors.Is(err, unix.ENODEV) {
			return 0, fmt.Errorf("link %s: %w", name, ErrNoLink)
		}
		return 0, fmt.Errorf("link %s: %w", name, err)
	}
	return int32(ifr.Uint32()), nil
}

// ifname returns the name of an interface index: "" for 0, "if<N>" for one
// that no longer exists.
func (d *Driver) ifname(index int32) string {
	if index == 0 {
		return ""
	}
	ifr, err := unix.NewIfreq("")
	if err == nil {
		ifr.SetUint32(uint32(index))
		err = unix.IoctlIfreq(d.ifsock, unix.SIOCGIFNAME, ifr)
	}
	if err != nil {
		return "if" + strconv.Itoa(int(index))
	}
	return ifr.Name()
}
