package netlink

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	vnl "github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/braid-router/braid/reconcile/plan"
)

// ipv6DefaultMetric is the metric the kernel gives an IPv6 route added
// without one.
const ipv6DefaultMetric = 1024

// routeKey is a route's identity as the kernel sees it: table 0 is the
// main table, an IPv6 metric 0 is 1024, and the destination is masked. It
// holds no pointer, so a map of ten thousand of them is cheap to build and
// costs the garbage collector nothing to scan.
type routeKey struct {
	dst    [16]byte // the masked destination, IPv4 in its IPv6-mapped form
	table  uint32
	metric uint32
	bits   uint8
	v6     bool
}

func makeRouteKey(table int, dst netip.Prefix, metric int) routeKey {
	a := dst.Addr()
	return routeKey{dst: a.As16(), table: uint32(table), metric: uint32(metric), bits: uint8(dst.Bits()), v6: a.Is6()}
}

func (r Route) kernelTable() int {
	if r.Table == 0 {
		return TableMain
	}
	return r.Table
}

func (r Route) kernelMetric() int {
	if r.Metric == 0 && r.Dst.Addr().Is6() {
		return ipv6DefaultMetric
	}
	return r.Metric
}

func (r Route) key() routeKey {
	return makeRouteKey(r.kernelTable(), r.Dst.Masked(), r.kernelMetric())
}

// liveRoute is a route as the kernel dumped it, from either socket.
type liveRoute struct {
	v6         bool
	table      int
	metric     int
	oif        int
	proto, typ uint8
	cloned     bool
	dst        netip.Prefix
	gw, src    netip.Addr
}

// key is the route's identity (the kernel's destination is masked).
func (lr liveRoute) key() routeKey { return makeRouteKey(lr.table, lr.dst, lr.metric) }

// familyIndex is 0 for IPv4, 1 for IPv6 (as in snapshot.routes).
func familyIndex(family int) int {
	if family == vnl.FAMILY_V6 {
		return 1
	}
	return 0
}

// routeIndex finds desired routes by identity. Its map holds positions in
// want rather than routes: a map without pointers costs the garbage
// collector nothing, which matters in a process that has just parsed a
// large spec.
type routeIndex struct {
	want []plan.Resource
	at   map[routeKey]int32
}

// get returns the desired route with identity k, and the resource that
// holds it.
func (x routeIndex) get(k routeKey) (Route, plan.Resource, bool) {
	i, ok := x.at[k]
	if !ok {
		return Route{}, nil, false
	}
	return x.want[i].(Route), x.want[i], true
}

// skip reports whether a route is none of braid's business: a cached
// clone, one of the kernel's broadcast, anycast and multicast routes, or a
// local route of the kernel's local table (braid's local routes are in its
// own tables).
func (lr liveRoute) skip() bool {
	switch lr.typ {
	case unix.RTN_BROADCAST, unix.RTN_ANYCAST, unix.RTN_MULTICAST:
		return true
	case unix.RTN_LOCAL:
		return lr.table == unix.RT_TABLE_LOCAL
	}
	return lr.cloned
}

func liveFromLib(lr vnl.Route) liveRoute {
	r := liveRoute{
		v6:     lr.Family == unix.AF_INET6,
		table:  lr.Table,
		metric: lr.Priority,
		oif:    lr.LinkIndex,
		proto:  uint8(lr.Protocol),
		typ:    uint8(lr.Type),
		cloned: lr.Flags&unix.RTM_F_CLONED != 0,
		gw:     addrFrom(lr.Gw),
		src:    addrFrom(lr.Src),
	}
	r.dst = prefixFrom(lr.Dst, r.v6)
	if len(lr.MultiPath) > 0 && !r.gw.IsValid() {
		// braid adds no multipath route: report the first hop.
		r.gw, r.oif = addrFrom(lr.MultiPath[0].Gw), lr.MultiPath[0].LinkIndex
	}
	return r
}

// dumpRoutes lists the routes of one family in every table: one dump,
// retried if the kernel says the tables changed under it.
// With the driver's own sockets, IPv6 goes over raw6, so that the two
// families can be dumped side by side.
func (d *Driver) dumpRoutes(family int) ([]liveRoute, error) {
	// As many as last time, with room: growing ten thousand routes step
	// by step costs more than the dump's parsing.
	d.mu.Lock()
	hint := d.routeHint[familyIndex(family)]
	d.mu.Unlock()
	out := make([]liveRoute, 0, hint+hint/8+16)
	var err error
	c := d.raw
	if family == vnl.FAMILY_V6 && d.raw6 != nil {
		c = d.raw6
	}
	for range dumpAttempts {
		out = out[:0]
		if c != nil {
			out, err = c.routes(family, out)
			if errors.Is(err, errDumpInterrupted) {
				continue
			}
		} else {
			err = d.h.RouteListFilteredIter(family, &vnl.Route{Table: unix.RT_TABLE_UNSPEC}, vnl.RT_FILTER_TABLE, func(lr vnl.Route) bool {
				out = append(out, liveFromLib(lr))
				return true
			})
			if errors.Is(err, vnl.ErrDumpInterrupted) {
				continue
			}
		}
		break
	}
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	d.mu.Lock()
	d.routeHint[familyIndex(family)] = len(out)
	d.mu.Unlock()
	return out, nil
}

// observeRoutes appends to out braid's routes among the dumped ones (IPv4,
// IPv6), and a foreign route only when it has the identity (table,
// destination, metric) of a desired one. Within braid's routes, link-scope
// routes come first so that deletes, which run in reverse, remove the
// routes through a gateway before the route that makes the gateway
// reachable.
func (d *Driver) observeRoutes(out []plan.Observed, lists [2][]liveRoute, want routeIndex) []plan.Observed {
	n := len(lists[0]) + len(lists[1])
	connected := make([]plan.Observed, 0, n/4)
	viaGateway := make([]plan.Observed, 0, n)
	var foreign []plan.Observed
	d.mu.Lock() // for d.name, once rather than per route
	defer d.mu.Unlock()
	for _, list := range lists {
		for _, lr := range list {
			if lr.skip() {
				continue
			}
			w, wres, wanted := want.get(lr.key())
			ours := int(lr.proto) == Protocol
			if !ours && !wanted {
				continue
			}
			r := routeFromLocked(lr, d.name)
			if wanted {
				// Name it as the desired route does, so the addresses
				// match.
				r.Table, r.Dst, r.Metric = w.Table, w.Dst, w.Metric
			}
			var res plan.Resource = r
			if ours && wanted && r == w {
				// As desired (the converged case): the desired value
				// itself, which spares boxing ten thousand copies.
				res = wres
			}
			switch {
			case !ours:
				r.Proto = int(lr.proto)
				foreign = append(foreign, plan.Observed{Resource: r, Foreign: true})
			case r.Gateway.IsValid():
				viaGateway = append(viaGateway, plan.Observed{Resource: res})
			default:
				connected = append(connected, plan.Observed{Resource: res})
			}
		}
	}
	out = slices.Grow(out, len(connected)+len(viaGateway)+len(foreign))
	out = append(out, connected...)
	out = append(out, viaGateway...)
	return append(out, foreign...)
}

// routeFrom converts a kernel route.
func (d *Driver) routeFrom(lr liveRoute) Route {
	d.mu.Lock()
	defer d.mu.Unlock()
	return routeFromLocked(lr, d.name)
}

// routeFromLocked converts a kernel route, naming its link from names
// (d.name, whose lock the caller holds).
func routeFromLocked(lr liveRoute, names map[int]string) Route {
	return Route{
		Table:   lr.table,
		Dst:     lr.dst,
		Metric:  lr.metric,
		Type:    routeTypeOf(lr.typ),
		Gateway: lr.gw,
		Src:     lr.src,
		Link:    linkNameIn(names, lr.oif),
	}
}

// kernelRoute converts a route for the netlink library, with braid's
// protocol.
func kernelRoute(r Route, index int) *vnl.Route {
	nr := &vnl.Route{
		LinkIndex: index,
		Dst:       ipNet(r.Dst.Masked()),
		Gw:        ipOf(r.Gateway),
		Src:       ipOf(r.Src),
		Priority:  r.Metric,
		Table:     r.kernelTable(),
		Protocol:  Protocol,
		Type:      int(r.Type.kernel()),
	}
	nr.Scope = vnl.Scope(r.scope())
	return nr
}

// scope is the scope the kernel wants for the route (what ip route gives
// it): host for a local route, link for a directly connected IPv4 one.
func (r Route) scope() uint8 {
	switch {
	case r.Type == Local:
		return unix.RT_SCOPE_HOST
	case r.Type == Unicast && !r.Gateway.IsValid() && r.Dst.Addr().Is4():
		return unix.RT_SCOPE_LINK
	}
	return unix.RT_SCOPE_UNIVERSE
}

// routeAdd adds a route with NLM_F_EXCL: an existing route with the same
// identity is EEXIST, never joined into a multipath route.
func (d *Driver) routeAdd(r Route, index int) error {
	if d.raw != nil {
		return d.raw.route(unix.RTM_NEWROUTE, unix.NLM_F_CREATE|unix.NLM_F_EXCL, r, index)
	}
	return d.h.RouteAdd(kernelRoute(r, index))
}

// routeReplace replaces the route with r's identity, or adds it.
func (d *Driver) routeReplace(r Route, index int) error {
	if d.raw != nil {
		return d.raw.route(unix.RTM_NEWROUTE, unix.NLM_F_CREATE|unix.NLM_F_REPLACE, r, index)
	}
	return d.h.RouteReplace(kernelRoute(r, index))
}

// routeDel deletes braid's route with r's identity, whatever it points at
// now; a foreign route with that identity is never matched.
func (d *Driver) routeDel(r Route) error {
	if d.raw != nil {
		return d.raw.route(unix.RTM_DELROUTE, 0, r, 0)
	}
	// Scope "nowhere" matches any scope (the library would send 0,
	// universe, which a link-scope route does not match).
	return d.h.RouteDel(&vnl.Route{
		Dst:      ipNet(r.Dst.Masked()),
		Priority: r.kernelMetric(),
		Table:    r.kernelTable(),
		Protocol: Protocol,
		Scope:    vnl.SCOPE_NOWHERE,
	})
}

// applyRoute adds (NLM_F_EXCL), replaces or deletes a route.
func (d *Driver) applyRoute(c plan.Change, r Route) (bool, error) {
	switch c.Action {
	case plan.Delete:
		// By identity and protocol only: whatever braid's route with this
		// identity now points at, it goes; a foreign one is never matched.
		// (IPv4 treats metric 0 as "any metric" here, as ip route del
		// does: a braid route already gone can take braid's route to the
		// same destination with another metric along, which the next
		// pass puts back.)
		err := d.routeDel(r)
		if isGone(err) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("delete route %s: %w", r.Address(), err)
		}
		d.wrote()
		return true, nil
	case plan.Update:
		err := d.withIndex(r.Link, func(i int) error { return d.routeReplace(r, i) })
		if err != nil {
			return false, routeError("replace", r, err)
		}
		d.wrote()
		return true, nil
	}
	err := d.withIndex(r.Link, func(i int) error { return d.routeAdd(r, i) })
	if err == nil {
		d.wrote()
		return true, nil
	}
	if !errors.Is(err, unix.EEXIST) {
		return false, routeError("add", r, err)
	}
	// Something holds the identity: braid's own route (already so, or to
	// be brought in line) or a foreign one (a conflict).
	live, foreign, found, lerr := d.findRoute(r)
	if lerr != nil {
		return false, fmt.Errorf("add route %s: %w (and listing routes: %v)", r.Address(), err, lerr)
	}
	if !found {
		return false, routeError("add", r, err)
	}
	if foreign {
		return false, fmt.Errorf("add route %s: %w (%s); left alone", r.Address(), ErrConflict, plan.Describe(live))
	}
	if equalFields(live, r) {
		return false, nil
	}
	err = d.withIndex(r.Link, func(i int) error { return d.routeReplace(r, i) })
	if err != nil {
		return false, routeError("replace", r, err)
	}
	d.wrote()
	return true, nil
}

// findRoute looks for the route that holds r's identity, braid's first,
// and reports whether it is foreign. It dumps r's family; it runs only when
// an add met EEXIST.
func (d *Driver) findRoute(r Route) (live Route, foreign, found bool, err error) {
	family := vnl.FAMILY_V4
	if r.Dst.Addr().Is6() {
		family = vnl.FAMILY_V6
	}
	list, err := d.dumpRoutes(family)
	if err != nil {
		return Route{}, false, false, err
	}
	k := r.key()
	for _, lr := range list {
		if lr.skip() {
			continue
		}
		lv := d.routeFrom(lr)
		if lv.key() != k {
			continue
		}
		lv.Table, lv.Dst, lv.Metric = r.Table, r.Dst, r.Metric
		if int(lr.proto) == Protocol {
			return lv, false, true, nil
		}
		if !found {
			lv.Proto = int(lr.proto)
			live, foreign, found = lv, true, true
		}
	}
	return live, foreign, found, nil
}

// routeError wraps a refused route write, naming the gateway when the
// kernel found it unreachable.
func routeError(verb string, r Route, err error) error {
	if r.Gateway.IsValid() && (errors.Is(err, unix.ENETUNREACH) || errors.Is(err, unix.EHOSTUNREACH)) {
		return fmt.Errorf("%s route %s: gateway %s is not reachable on %s: %w", verb, r.Address(), r.Gateway, r.Link, err)
	}
	return fmt.Errorf("%s route %s: %w", verb, r.Address(), err)
}

// equalFields reports whether two resources need no change between them.
func equalFields(a, b plan.Resource) bool { return slices.Equal(a.Fields(), b.Fields()) }
