package netlink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"

	vnl "github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/braid-router/braid/drivers/failpoint"
	"github.com/braid-router/braid/drivers/prefetch"
	"github.com/braid-router/braid/drivers/record"
	"github.com/braid-router/braid/reconcile/plan"
)

// Record kinds this driver writes to the ownership record.
const (
	// KindLink entries are keyed by interface name and hold the link's
	// admin state, MTU and MAC address from before braid first changed
	// them.
	KindLink = "link"
	// KindSysctl entries are keyed by the dotted sysctl name and hold its
	// value from before braid first changed it.
	KindSysctl = "sysctl"
	// KindAddress entries are keyed by "LINK PREFIX" and mark an address
	// braid added.
	KindAddress = "address"
)

// ErrConflict is wrapped by the error Apply returns when a foreign object
// occupies what braid wants to create. The foreign object is left alone.
var ErrConflict = errors.New("occupied by a foreign object")

// ErrNoLink is wrapped by errors about an interface that does not exist
// ("link wan1: no such interface").
var ErrNoLink = errors.New("no such interface")

// Options configures a Driver.
type Options struct {
	// Handle is the rtnetlink handle to use. Nil (recommended) opens the
	// driver's own sockets in the network namespace of the calling
	// thread, closed by Close; only then do route writes and dumps take
	// the fast path (see conn), since the namespace of a caller's handle
	// cannot be known.
	Handle *vnl.Handle
	// Record is the ownership record. Required.
	Record *record.Record
	// Writes counts kernel writes; nil counts nothing.
	Writes *failpoint.Counter
	// Log receives one line per applied change; nil discards.
	Log *slog.Logger
	// SysctlRoot is where sysctls are read and written; "" is /proc/sys.
	// /proc/sys/net belongs to the network namespace of the thread that
	// opens the file, so sysctl changes must be applied from a thread in
	// the target namespace.
	SysctlRoot string
}

// Driver converges links, sysctls, addresses, routes and rules over
// rtnetlink. It implements reconcile.Driver. Its methods are safe for
// concurrent use, though the engine calls them one at a time.
type Driver struct {
	h         *vnl.Handle
	ownHandle bool
	// raw carries route writes and dumps when the driver opened its
	// handle itself (and so knows the namespace): see conn. With a
	// caller's handle, whose namespace it cannot tell, everything goes
	// through the handle.
	raw *conn
	// raw6 carries the IPv6 lane of a long pipelined run (see ApplyBatch);
	// nil when raw is.
	raw6       *conn
	rec        *record.Record
	writes     *failpoint.Counter
	log        *slog.Logger
	sysctlRoot string

	mu sync.Mutex
	// index and name map interface names to indexes and back. Observe
	// refreshes them with one link dump; Apply fills in misses.
	index map[string]int
	name  map[int]string
	// stale lists record entries the last Observe found gone from the
	// kernel; the next Apply (or PruneRecord) forgets them. Observe never
	// writes the record itself, so a read-only plan leaves it untouched.
	stale []recordKey
	// pre is the snapshot Prefetch is taking for the next Observe.
	pre prefetch.Slot[*snapshot]
	// routeHint is the number of routes the last dump of each family
	// (IPv4, IPv6) found.
	routeHint [2]int
}

type recordKey struct{ kind, key string }

// New returns a driver. With a nil Options.Handle it opens its sockets in
// the network namespace of the calling thread, which is also the one whose
// /proc/sys it must be used from: braid runs the driver inside the
// namespace it converges.
func New(opts Options) (*Driver, error) {
	if opts.Record == nil {
		return nil, errors.New("netlink driver: Options.Record is required")
	}
	d := &Driver{
		h:          opts.Handle,
		rec:        opts.Record,
		writes:     opts.Writes,
		log:        opts.Log,
		sysctlRoot: opts.SysctlRoot,
		index:      map[string]int{},
		name:       map[int]string{},
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if d.sysctlRoot == "" {
		d.sysctlRoot = "/proc/sys"
	}
	if d.h == nil {
		h, err := vnl.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return nil, fmt.Errorf("netlink driver: open rtnetlink socket: %w", err)
		}
		raw, err := dial()
		if err != nil {
			h.Close()
			return nil, fmt.Errorf("netlink driver: open rtnetlink socket: %w", err)
		}
		raw6, err := dial()
		if err != nil {
			h.Close()
			raw.close()
			return nil, fmt.Errorf("netlink driver: open rtnetlink socket: %w", err)
		}
		d.h, d.ownHandle, d.raw, d.raw6 = h, true, raw, raw6
	}
	return d, nil
}

// Close releases the sockets the driver opened (not a caller's handle).
func (d *Driver) Close() error {
	d.pre.Drop(d.log)
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.ownHandle {
		return nil
	}
	d.ownHandle = false
	d.h.Close()
	return errors.Join(d.raw.close(), d.raw6.close())
}

// Name implements reconcile.Driver.
func (d *Driver) Name() string { return "netlink" }

// Owns implements reconcile.Driver: links, sysctls, addresses, routes and
// rules belong to this driver.
func (d *Driver) Owns(r plan.Resource) bool {
	switch r.(type) {
	case Link, Sysctl, Addr, Route, Rule:
		return true
	}
	return false
}

// desired is the desired state split by type.
type desired struct {
	links   []Link
	sysctls []Sysctl
	addrs   map[string]Addr // by record key
	// routes maps each desired route's identity to the route.
	routes routeIndex
	rules  map[ruleKey]Rule
}

func split(rs []plan.Resource) desired {
	var nroutes, nrules int
	for _, r := range rs {
		switch r.(type) {
		case Route:
			nroutes++
		case Rule:
			nrules++
		}
	}
	w := desired{addrs: map[string]Addr{}, routes: routeIndex{want: rs, at: make(map[routeKey]int32, nroutes)}, rules: make(map[ruleKey]Rule, nrules)}
	for i, r := range rs {
		switch r := r.(type) {
		case Link:
			w.links = append(w.links, r)
		case Sysctl:
			w.sysctls = append(w.sysctls, r)
		case Addr:
			w.addrs[r.recordKey()] = r
		case Route:
			w.routes.at[r.key()] = int32(i)
		case Rule:
			w.rules[r.key()] = r
		}
	}
	return w
}

// Observe implements reconcile.Driver. It reads the kernel with one dump
// per object kind and family (links, addresses, routes and rules), reads
// the sysctls braid wants or recorded, and returns, in apply order: links,
// sysctls, addresses, routes, rules. Foreign addresses, routes and rules
// are returned only where they occupy a desired one's address.
func (d *Driver) Observe(ctx context.Context, want []plan.Resource) ([]plan.Observed, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	w := split(want)
	snap, ok := d.pre.Take(d.log)
	if !ok {
		var err error
		if snap, err = d.dump(ctx, true); err != nil {
			return nil, err
		}
	}
	var out []plan.Observed
	var stale []recordKey
	steps := []func() error{
		func() error {
			o, s, err := d.observeLinks(snap.links, w.links)
			out, stale = append(out, o...), append(stale, s...)
			return err
		},
		func() error {
			o, s, err := d.observeSysctls(w.sysctls)
			out, stale = append(out, o...), append(stale, s...)
			return err
		},
		func() error {
			o, s := d.observeAddrs(snap.addrs, w.addrs)
			out, stale = append(out, o...), append(stale, s...)
			return nil
		},
		func() error {
			out = d.observeRoutes(out, snap.routes, w.routes)
			return nil
		},
		func() error {
			out = d.observeRules(out, snap.rules, w.rules)
			return nil
		},
	}
	for _, step := range steps {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := step(); err != nil {
			return nil, err
		}
	}
	d.mu.Lock()
	d.stale = stale
	d.mu.Unlock()
	return out, nil
}

// Apply implements reconcile.Driver: it performs one change. EEXIST on a
// create of an object braid owns and ENOENT on a delete are "already so".
// A create that collides with a foreign object fails with an error
// wrapping ErrConflict and leaves the object alone.
func (d *Driver) Apply(ctx context.Context, c plan.Change) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d.pre.Drop(d.log)
	if err := d.PruneRecord(); err != nil {
		return err
	}
	wrote, err := d.apply(c)
	if err != nil {
		return err
	}
	d.logApplied(ctx, c, wrote)
	return nil
}

// apply performs one change and reports whether it wrote to the kernel.
func (d *Driver) apply(c plan.Change) (bool, error) {
	switch r := c.Resource().(type) {
	case Link:
		return d.applyLink(c.Action, r)
	case Sysctl:
		return d.applySysctl(c.Action, r)
	case Addr:
		return d.applyAddr(c.Action, r)
	case Route:
		return d.applyRoute(c, r)
	case Rule:
		return d.applyRule(c, r)
	}
	return false, fmt.Errorf("netlink driver: %s: not a netlink resource (%T)", c.Address(), c.Resource())
}

// PruneRecord forgets the record entries that the last Observe found gone
// from the kernel (addresses removed by hand, links and sysctls that no
// longer exist). Apply calls it; a writer with nothing to apply may call
// it too. A read-only plan must not.
func (d *Driver) PruneRecord() error {
	d.mu.Lock()
	stale := d.stale
	d.stale = nil
	d.mu.Unlock()
	for _, k := range stale {
		if err := d.rec.Delete(k.kind, k.key); err != nil {
			return err
		}
	}
	return nil
}

// wrote counts one kernel write that took effect.
func (d *Driver) wrote() { d.writes.Wrote() }

// dumpLinks lists all links and refreshes the name/index cache.
func (d *Driver) dumpLinks() (map[string]vnl.Link, error) {
	var list []vnl.Link
	var err error
	for range dumpAttempts {
		list, err = d.h.LinkList()
		if !errors.Is(err, vnl.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	byName := make(map[string]vnl.Link, len(list))
	index := make(map[string]int, len(list))
	name := make(map[int]string, len(list))
	for _, l := range list {
		a := l.Attrs()
		byName[a.Name] = l
		index[a.Name] = a.Index
		name[a.Index] = a.Name
	}
	d.mu.Lock()
	d.index, d.name = index, name
	d.mu.Unlock()
	return byName, nil
}

// dumpAttempts bounds the retries of a dump the kernel interrupted because
// the table changed under it.
const dumpAttempts = 5

// ifindex returns the index of the named link, from the cache or the
// kernel.
func (d *Driver) ifindex(name string) (int, error) {
	d.mu.Lock()
	i, ok := d.index[name]
	d.mu.Unlock()
	if ok {
		return i, nil
	}
	l, err := d.h.LinkByName(name)
	if err != nil {
		if isNoLink(err) {
			return 0, fmt.Errorf("link %s: %w", name, ErrNoLink)
		}
		return 0, fmt.Errorf("link %s: %w", name, err)
	}
	i = l.Attrs().Index
	d.mu.Lock()
	d.index[name] = i
	d.name[i] = name
	d.mu.Unlock()
	return i, nil
}

// linkName returns the cached name of an interface index.
func (d *Driver) linkName(i int) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return linkNameIn(d.name, i)
}

// linkNameIn names an interface index from names: "" for none, "ifN" for
// one not in names.
func linkNameIn(names map[int]string, i int) string {
	if n, ok := names[i]; ok {
		return n
	}
	if i == 0 {
		return ""
	}
	return "if" + strconv.Itoa(i)
}

// forget drops a name from the cache, when the kernel says the index is
// gone (the link was recreated since the cache was filled).
func (d *Driver) forget(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if i, ok := d.index[name]; ok {
		delete(d.index, name)
		delete(d.name, i)
	}
}

// withIndex runs fn with the index of the named link, once more with a
// fresh index if the cached one is gone.
func (d *Driver) withIndex(name string, fn func(index int) error) error {
	i, err := d.ifindex(name)
	if err != nil {
		return err
	}
	err = fn(i)
	if errors.Is(err, unix.ENODEV) {
		d.forget(name)
		if i, err = d.ifindex(name); err != nil {
			return err
		}
		err = fn(i)
	}
	return err
}

// addrFrom converts an address from vishvananda/netlink, which sometimes
// gives IPv4 in 16 bytes (a default route's destination): IPv4 comes back
// as IPv4.
func addrFrom(ip net.IP) netip.Addr {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Addr{}
	}
	return a.Unmap()
}

// prefixFrom converts a kernel prefix; nil is the default route of the
// family.
func prefixFrom(n *net.IPNet, v6 bool) netip.Prefix {
	if n == nil {
		if v6 {
			return netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		}
		return netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(addrFrom(n.IP), ones)
}

// ipNet converts a prefix for the netlink library, keeping the address
// bits (an interface address is not masked).
func ipNet(p netip.Prefix) *net.IPNet {
	a := p.Addr()
	return &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(p.Bits(), a.BitLen())}
}

// ipOf converts an address for the netlink library; invalid is nil.
func ipOf(a netip.Addr) net.IP {
	if !a.IsValid() {
		return nil
	}
	return a.AsSlice()
}

// isGone reports whether a delete found nothing to delete.
func isGone(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) ||
		errors.Is(err, unix.EADDRNOTAVAIL) || errors.Is(err, unix.ENODEV)
}

// sortedKeys returns the keys of a map in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
