package compile

import (
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/braid-router/braid/api"
	nl "github.com/braid-router/braid/drivers/netlink"
	"github.com/braid-router/braid/facts"
	"github.com/braid-router/braid/probe"
	"github.com/braid-router/braid/reconcile"
	"github.com/braid-router/braid/reconcile/plan"
	"github.com/braid-router/braid/session"
)

// Route metrics for routes whose order does not matter. IPv6 has no metric
// 0: the kernel turns it into 1024, so braid asks for that directly.
const (
	metricConnected4 = 0
	metricConnected6 = 256
	metricTable4     = 0
	metricTable6     = 1024
)

// Compile turns a document and the current facts into the desired state:
// the kernel resources to converge, the sessions to run, the notes the
// plan must carry and the targets that must keep answering after a
// change. It dispatches on the document's kind. It is pure: no I/O, no
// clock, no secrets.
func Compile(doc *api.Document, f facts.Set) (reconcile.Desired, error) {
	if doc == nil {
		return reconcile.Desired{}, nil
	}
	switch doc.Kind {
	case api.KindRouter:
		return router(doc.Router, f, doc.Position)
	case api.KindPeer:
		return Peer(doc.Peer, f)
	}
	return reconcile.Desired{}, fmt.Errorf("kind %q: want %s or %s", doc.Kind, api.KindRouter, api.KindPeer)
}

// Router compiles a router spec. Its notes name spec paths but no lines:
// Compile, which has the document, gives them their file and line.
func Router(spec *api.RouterSpec, f facts.Set) (reconcile.Desired, error) {
	return router(spec, f, nil)
}

// router compiles a router spec; where, if set, says where a spec path
// was written.
func router(spec *api.RouterSpec, f facts.Set, where func(string) (api.Position, bool)) (reconcile.Desired, error) {
	if spec == nil {
		return reconcile.Desired{}, nil
	}
	nroutes, nrules := 8*len(spec.Uplinks)+4, 4*len(spec.Uplinks)+4
	for _, r := range spec.Routes {
		nroutes += len(r.To)
		nrules += len(r.From)
	}
	c := compiler{facts: f, where: where, uplinks: map[string]*uplinkState{},
		routes: make([]nl.Route, 0, nroutes), rules: make([]nl.Rule, 0, nrules)}
	c.down = withdrawn(spec, &c)
	c.forwarding()
	if lan := spec.LAN; lan != nil && !c.present(lan.Interface) {
		// The firewall still names it: its rules match by name, so they
		// hold from the moment the link appears.
		c.wait("lan", c.waitingFor(lan.Interface, "spec.lan.interface")+": the LAN is configured when the link appears")
	} else if lan != nil {
		c.link(nl.Link{Name: lan.Interface, Up: true, MTU: lan.MTU})
		for _, a := range lan.Addresses {
			p, err := netip.ParsePrefix(a)
			if err != nil {
				return reconcile.Desired{}, fmt.Errorf("lan.addresses: %w", err)
			}
			c.address(lan.Interface, p)
		}
	}
	for i := range spec.Uplinks {
		u := &spec.Uplinks[i]
		st, err := c.uplink(u, i)
		if err != nil {
			return reconcile.Desired{}, fmt.Errorf("uplinks[%s]: %w", u.Name, err)
		}
		c.uplinks[u.Name] = st
	}
	c.delegatedLAN(spec)
	if len(spec.Uplinks) > 0 {
		// Connected, LAN and other specific routes of the main table win
		// over every steering rule; its default routes come last.
		c.rules = append(c.rules,
			nl.Rule{Priority: nl.PrioMain, Table: nl.TableMain, SuppressPrefixlen: 0},
			nl.Rule{Priority: nl.PrioMain, IPv6: true, Table: nl.TableMain, SuppressPrefixlen: 0})
	}
	steer4, steer6 := false, false
	for i, r := range spec.Routes {
		u, ok := c.uplinks[r.Via]
		if !ok {
			return reconcile.Desired{}, fmt.Errorf("routes[%d].via: no uplink %q", i, r.Via)
		}
		if c.down[r.Via] {
			continue // withdrawn while its uplink is unhealthy (health.go)
		}
		if u.missing != "" {
			// Its table is empty while the link is missing: the
			// destinations wait, and what from: sends falls through to
			// the main table, out of the other uplinks.
			switch {
			case len(r.To) > 0:
				c.wait(fmt.Sprintf("routes[%d].to", i), u.missing+": the destinations via "+r.Via+" are routed when the link appears")
			case len(r.From) > 0:
				c.wait(fmt.Sprintf("routes[%d].from", i), u.missing+": until the link appears, what these sources send leaves by the other uplinks")
			}
		}
		for _, s := range r.From {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return reconcile.Desired{}, fmt.Errorf("routes[%d].from: %w", i, err)
			}
			c.rules = append(c.rules, nl.Rule{Priority: nl.PrioFrom, From: p.Masked(), Table: u.table, SuppressPrefixlen: -1})
		}
		waiting4, waiting6 := false, false
		for _, s := range r.To {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return reconcile.Desired{}, fmt.Errorf("routes[%d].to: %w", i, err)
			}
			p = p.Masked()
			gw, metric := u.gw4, metricTable4
			if p.Addr().Is6() {
				gw, metric = u.gw6, metricTable6
				steer6 = true
			} else {
				steer4 = true
			}
			// A missing fact means waiting, never an error.
			if u.missing != "" {
				continue
			}
			if !gw.IsValid() && p.Addr().Is4() && u.dhcp4 {
				waiting4 = true
				continue
			}
			if !gw.IsValid() && p.Addr().Is6() && u.ra6 {
				waiting6 = true
				continue
			}
			if !gw.IsValid() {
				return reconcile.Desired{}, fmt.Errorf("routes[%d].to: %s via %s: the uplink has no %s gateway", i, p, r.Via, family(p.Addr()))
			}
			c.routes = append(c.routes, nl.Route{Table: nl.TableSteer, Dst: p, Metric: metric, Gateway: gw, Link: u.link})
		}
		if waiting4 {
			c.wait(fmt.Sprintf("routes[%d].to", i), fmt.Sprintf("the IPv4 destinations via %s wait for the uplink's DHCP lease", r.Via))
		}
		if waiting6 {
			c.wait(fmt.Sprintf("routes[%d].to", i), fmt.Sprintf("the IPv6 destinations via %s wait for the uplink's router advertisements", r.Via))
		}
	}
	if err := c.tunnels(spec); err != nil {
		return reconcile.Desired{}, err
	}
	if err := c.firewall(spec); err != nil {
		return reconcile.Desired{}, err
	}
	if err := c.mptcp(spec); err != nil {
		return reconcile.Desired{}, err
	}
	if steer4 {
		c.rules = append(c.rules, nl.Rule{Priority: nl.PrioSteer, Table: nl.TableSteer, SuppressPrefixlen: -1})
	}
	if steer6 {
		c.rules = append(c.rules, nl.Rule{Priority: nl.PrioSteer, IPv6: true, Table: nl.TableSteer, SuppressPrefixlen: -1})
	}
	if err := c.sessions(spec); err != nil {
		return reconcile.Desired{}, err
	}
	if err := c.proxy(spec); err != nil {
		return reconcile.Desired{}, err
	}
	if err := c.dns(spec); err != nil {
		return reconcile.Desired{}, err
	}
	c.targets = Targets(spec)
	d, err := c.desired()
	d.Resolvers = c.resolvers(spec)
	d.Intents = c.intents(spec)
	return d, err
}

// uplinkState is what the rest of the compile needs of an uplink: its
// link and table, and the addresses and gateways it has now (static, or
// from its facts).
type uplinkState struct {
	name     string
	link     string
	table    int
	gw4, gw6 netip.Addr
	addr4    netip.Prefix
	addr6    netip.Prefix
	// dhcp4 is set when the uplink's IPv4 comes from a DHCP lease, ra6
	// when its IPv6 comes from router advertisements.
	dhcp4, ra6 bool
	// missing, when the uplink's link is missing, says so with the spec
	// line that names it ("waiting: link wan9 (home.yaml:23)"): nothing
	// is configured on it, and its sessions wait.
	missing string
}

// addrs lists the uplink's current addresses, IPv4 first.
func (u *uplinkState) addrs() []netip.Prefix {
	var out []netip.Prefix
	for _, p := range []netip.Prefix{u.addr4, u.addr6} {
		if p.IsValid() {
			out = append(out, p)
		}
	}
	return out
}

type compiler struct {
	facts facts.Set
	// where says where a spec path was written; nil for a spec built in
	// Go.
	where   func(string) (api.Position, bool)
	uplinks map[string]*uplinkState
	// tunnelStates are the spec's tunnels, in order (tunnel.go).
	tunnelStates []*tunnelState
	// down holds the uplinks withdrawn for their health (health.go).
	down map[string]bool
	// specs are the sessions to run, targets what must keep answering.
	specs   []session.Spec
	targets []probe.Target

	// mptcpObjs and nftObjs are the MPTCP and nftables drivers' resources,
	// in their apply order.
	mptcpObjs []plan.Resource
	nftObjs   []plan.Resource
	// proxySteers is set when the proxy's steering is in the tproxy
	// chain, with dns.intercept's rules in it (proxy.go, dns.go).
	proxySteers bool

	links   []nl.Link
	sysctls []nl.Sysctl
	addrs   []nl.Addr
	routes  []nl.Route
	rules   []nl.Rule
	noted   []plan.Note
}

func (c *compiler) desired() (reconcile.Desired, error) {
	d := reconcile.Desired{Resources: make([]plan.Resource, 0, len(c.links)+len(c.sysctls)+len(c.addrs)+len(c.routes)+len(c.rules))}
	seen := make(map[string]plan.Resource, cap(d.Resources))
	add := func(r plan.Resource) error {
		addr := r.Address()
		if prev, ok := seen[addr]; ok {
			if !plan.Same(prev, r) {
				return fmt.Errorf("%s is wanted twice, with %s and with %s", addr, plan.Describe(prev), plan.Describe(r))
			}
			return nil
		}
		seen[addr] = r
		d.Resources = append(d.Resources, r)
		return nil
	}
	for _, r := range c.links {
		if err := add(r); err != nil {
			return reconcile.Desired{}, err
		}
	}
	for _, r := range c.sysctls {
		if err := add(r); err != nil {
			return reconcile.Desired{}, err
		}
	}
	for _, r := range c.addrs {
		if err := add(r); err != nil {
			return reconcile.Desired{}, err
		}
	}
	// Connected routes first: a gateway must be reachable when its route
	// is added.
	for _, gateway := range []bool{false, true} {
		for _, r := range c.routes {
			if r.Gateway.IsValid() != gateway {
				continue
			}
			if err := add(r); err != nil {
				return reconcile.Desired{}, err
			}
		}
	}
	for _, r := range c.rules {
		if err := add(r); err != nil {
			return reconcile.Desired{}, err
		}
	}
	for _, r := range c.mptcpObjs {
		if err := add(r); err != nil {
			return reconcile.Desired{}, err
		}
	}
	for _, r := range c.nftObjs {
		if err := add(r); err != nil {
			return reconcile.Desired{}, err
		}
	}
	d.Notes = c.noted
	d.Sessions = c.specs
	d.Targets = c.targets
	return d, nil
}

func family(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}

func (c *compiler) forwarding() {
	c.sysctls = append(c.sysctls,
		nl.Sysctl{Name: "net.ipv4.ip_forward", Value: "1"},
		nl.Sysctl{Name: "net.ipv6.conf.all.forwarding", Value: "1"})
}

func (c *compiler) link(l nl.Link) {
	c.links = append(c.links, l)
}

// address adds an interface address and its connected route in the main
// table, which braid installs itself (addresses carry noprefixroute).
func (c *compiler) address(link string, p netip.Prefix) {
	c.addrs = append(c.addrs, nl.Addr{Link: link, Prefix: p})
	// A second address in a subnet the link already has needs no route
	// of its own: the first one's reaches the subnet (as the kernel, which
	// adds a prefix route for a primary address only).
	r := connected(nl.TableMain, link, p)
	if !slices.ContainsFunc(c.routes, func(o nl.Route) bool {
		return o.Table == r.Table && o.Dst == r.Dst && o.Link == r.Link && o.Metric == r.Metric
	}) {
		c.routes = append(c.routes, r)
	}
	if p.Addr().Is4() {
		// Without it, removing a link's first address in a subnet removes
		// the others in that subnet too: changing 10.0.0.2/24 to
		// 10.0.0.3/24 would lose the new address with the old one.
		c.sysctls = append(c.sysctls, nl.Sysctl{Name: "net.ipv4.conf." + sysctlIfname(link) + ".promote_secondaries", Value: "1"})
	}
}

func connected(table int, link string, p netip.Prefix) nl.Route {
	r := nl.Route{Table: table, Dst: p.Masked(), Link: link, Metric: metricConnected4, Src: p.Addr()}
	if p.Addr().Is6() {
		// A preferred source on IPv6 routes fails while the address is
		// tentative; source selection picks it anyway.
		r.Metric, r.Src = metricConnected6, netip.Addr{}
	}
	return r
}

// addressing is one address of an uplink and its gateway, from the spec
// (static) or from a fact (a lease).
type addressing struct {
	addr netip.Prefix
	gw   netip.Addr // invalid: no default route
}

// uplink compiles uplink u, the spec's i-th. An uplink whose link is
// missing waits: nothing is configured on the link (its settings,
// sysctls, addresses, routes, the rules from its addresses, its MPTCP
// endpoints), and the kernel already removed what was (its addresses and
// routes went with the link). What does not live on the link stays: the
// rules of its table's mark (its table is empty meanwhile) and its
// firewall rules, which match by name and so hold the moment the link
// appears.
func (c *compiler) uplink(u *api.Uplink, i int) (*uplinkState, error) {
	st := &uplinkState{name: u.Name, link: u.Interface, table: u.Table,
		dhcp4: u.IPv4 != nil && u.IPv4.DHCP != nil, ra6: u.IPv6 != nil && u.IPv6.RA != nil}
	// Packets braid's nftables rules mark with this uplink's table number
	// (per-domain egress) leave by it, unless it is unhealthy.
	down := c.down[u.Name]
	if !down {
		c.rules = append(c.rules,
			nl.Rule{Priority: nl.PrioMark, Mark: uint32(u.Table), Table: u.Table, SuppressPrefixlen: -1},
			nl.Rule{Priority: nl.PrioMark, IPv6: true, Mark: uint32(u.Table), Table: u.Table, SuppressPrefixlen: -1})
	}
	if !c.present(u.Interface) {
		st.missing = c.waitingFor(u.Interface, fmt.Sprintf("spec.uplinks[%d].interface", i))
		c.wait(fmt.Sprintf("uplinks[%d]", i), st.missing+": uplink "+u.Name+" is configured when the link appears")
		return st, nil
	}
	link := nl.Link{Name: u.Interface, Up: true, MTU: u.MTU}
	if u.MACAddress != "" {
		mac, err := net.ParseMAC(u.MACAddress)
		if err != nil {
			return nil, fmt.Errorf("macAddress: %w", err)
		}
		link.MAC = mac.String()
	}
	c.link(link)
	c.sysctls = append(c.sysctls, nl.Sysctl{Name: "net.ipv4.conf." + sysctlIfname(u.Interface) + ".rp_filter", Value: "2"})
	c.carrier(u)
	var as []addressing
	for _, s := range []*api.Static{staticOf4(u), staticOf6(u)} {
		if s == nil {
			continue
		}
		p, err := netip.ParsePrefix(s.Address)
		if err != nil {
			return nil, fmt.Errorf("address: %w", err)
		}
		a := addressing{addr: p}
		if s.Gateway != "" {
			if a.gw, err = netip.ParseAddr(s.Gateway); err != nil {
				return nil, fmt.Errorf("gateway: %w", err)
			}
		}
		as = append(as, a)
	}
	if st.dhcp4 {
		// The lease's address and router, once the DHCP session has one.
		if l, ok := c.facts.Lease4(u.Name); ok && l.Address.IsValid() && l.Address.Addr().Is4() {
			as = append(as, addressing{addr: l.Address, gw: l.Gateway})
		}
	}
	if st.ra6 {
		// braid reads the link's adverts itself: the kernel's accept_ra
		// would add default routes of its own, outside braid's tables and
		// failover.
		c.sysctls = append(c.sysctls, nl.Sysctl{Name: "net.ipv6.conf." + sysctlIfname(u.Interface) + ".accept_ra", Value: "0"})
		if a, ok := c.raAddressing(u); ok {
			as = append(as, a)
		}
	}
	for _, a := range as {
		p := a.addr
		c.address(u.Interface, p)
		c.routes = append(c.routes, connected(u.Table, u.Interface, p))
		host := netip.PrefixFrom(p.Addr(), p.Addr().BitLen())
		c.rules = append(c.rules, nl.Rule{Priority: nl.PrioUplink, From: host, Table: u.Table, SuppressPrefixlen: -1})
		if p.Addr().Is4() {
			st.addr4 = p
		} else {
			st.addr6 = p
		}
		if !a.gw.IsValid() {
			continue
		}
		def, metric := netip.PrefixFrom(netip.IPv4Unspecified(), 0), metricTable4
		if a.gw.Is6() {
			def, metric = netip.PrefixFrom(netip.IPv6Unspecified(), 0), metricTable6
			st.gw6 = a.gw
		} else {
			st.gw4 = a.gw
		}
		c.routes = append(c.routes, nl.Route{Table: u.Table, Dst: def, Metric: metric, Gateway: a.gw, Link: u.Interface})
		if !down {
			c.routes = append(c.routes, nl.Route{Table: nl.TableMain, Dst: def, Metric: u.Priority, Gateway: a.gw, Link: u.Interface})
		}
	}
	return st, nil
}

// raAddressing is what the RA session learnt on the uplink's link: the
// SLAAC address, and the default router (a link-local gateway, which
// routes name with their link) while its lifetime lasts. A router without
// an address is no use: the uplink has no IPv6 source to leave from.
func (c *compiler) raAddressing(u *api.Uplink) (addressing, bool) {
	a, ok := c.facts.SLAAC(u.Name)
	if !ok || a.Link != u.Interface || !a.Address.IsValid() || !a.Address.Addr().Is6() {
		return addressing{}, false
	}
	ad := addressing{addr: a.Address}
	if r, ok := c.facts.Router6(u.Name); ok && r.Link == u.Interface && r.Router.Is6() {
		ad.gw = r.Router
	}
	return ad, true
}

// sysctlIfname writes an interface name as sysctl(8) does in dotted names:
// a dot in the name (eth0.100) becomes a slash.
func sysctlIfname(name string) string {
	b := []byte(name)
	for i := range b {
		if b[i] == '.' {
			b[i] = '/'
		}
	}
	return string(b)
}

func (c *compiler) note(section, msg string) {
	c.noted = append(c.noted, plan.Note{Section: section, Message: msg})
}

// wait notes what waits for something outside the spec (a link, a
// lease): it is converged once that is there.
func (c *compiler) wait(section, msg string) {
	c.noted = append(c.noted, plan.Note{Section: section, Message: msg, Waiting: true})
}

// present reports whether the kernel link name is there, as far as the
// facts say: a link observed missing is not; one nobody observed is
// taken as the spec says (see facts.Set.Interface).
func (c *compiler) present(name string) bool {
	i, ok := c.facts.Interface(name)
	return !ok || i.Present
}

// waitingFor says what waits for link name, with the spec line at path
// that names it: "waiting: link wan9 (home.yaml:23)".
func (c *compiler) waitingFor(name, path string) string {
	s := "waiting: link " + name
	if c.where != nil {
		if p, ok := c.where(path); ok {
			s += " (" + p.String() + ")"
		}
	}
	return s
}
