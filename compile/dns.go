package compile

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/braid-router/braid/api"
	nl "github.com/braid-router/braid/drivers/netlink"
	nft "github.com/braid-router/braid/drivers/nftables"
	"github.com/braid-router/braid/reconcile/plan"
	"github.com/braid-router/braid/session"
	"github.com/braid-router/braid/sessions/dns"
	"github.com/braid-router/braid/sessions/dns/upstream"
)

// dnsSession is the forwarder's session, session[dns/resolver]: what its
// process-bound objects (the intercept rules, the local delivery of what
// they mark) belong to.
var dnsSession = session.Spec{Kind: dns.Kind, Name: dns.Name}.ID()

// dnsListen returns where the forwarder listens: for "lan", every
// address braid holds on the LAN interface now (lan.addresses and the
// box's address in a delegated prefix, once it is there), link-local ones
// left out (they need a zone); then the explicit addresses, once each.
// An address the WAN side holds (wanAddrs: an uplink's DHCP lease or
// SLAAC address, a tunnel's) is left out, with a note naming the
// dns.listen entry and the uplink: the resolver is never bound on the
// WAN side, and the rest of the plan goes on (a lease that changes is no
// reason to stop converging; validation refuses an uplink's static
// address). It reads the addresses the compile already wants (c.addrs),
// so it must run after the LAN's, the uplinks', the tunnels' and the
// delegation's.
func (c *compiler) dnsListen(spec *api.RouterSpec) (listen []netip.Addr, err error) {
	d := spec.DNS
	if d == nil {
		return nil, nil
	}
	var lan []netip.Addr
	if l := spec.LAN; l != nil {
		for _, a := range c.addrs {
			if a.Link == l.Interface && !a.Prefix.Addr().IsLinkLocalUnicast() && !slices.Contains(lan, a.Prefix.Addr()) {
				lan = append(lan, a.Prefix.Addr())
			}
		}
	}
	wan := c.wanAddrs(spec)
	add := func(i int, a netip.Addr) {
		if w, ok := wan[a]; ok {
			c.note(fmt.Sprintf("dns.listen[%d]", i), fmt.Sprintf("%s is %s: braid's resolver never listens on the WAN side, and does not on this address; listen on the LAN (lan or a LAN address)", a, w))
			return
		}
		if !slices.Contains(listen, a) {
			listen = append(listen, a)
		}
	}
	for i, l := range d.Listen {
		if l == "lan" {
			for _, a := range lan {
				add(i, a)
			}
			continue
		}
		a, err := netip.ParseAddr(l)
		if err != nil {
			return nil, fmt.Errorf("dns.listen[%d]: %w", i, err)
		}
		add(i, a.Unmap())
	}
	return listen, nil
}

// wanAddrs maps each address the WAN side holds or is about to to what
// holds it ("uplink isp1's address (its DHCP lease)"): the uplinks'
// static, leased and SLAAC addresses, from the facts even while an
// uplink's link is missing, and every address the compile puts on an
// uplink's or a tunnel's link.
func (c *compiler) wanAddrs(spec *api.RouterSpec) map[netip.Addr]string {
	wan := map[netip.Addr]string{}
	put := func(a netip.Addr, what string) {
		if _, ok := wan[a.Unmap()]; !ok && a.IsValid() {
			wan[a.Unmap()] = what
		}
	}
	links := map[string]string{}
	for _, u := range spec.Uplinks {
		if l, ok := c.facts.Lease4(u.Name); ok {
			put(l.Address.Addr(), "uplink "+u.Name+"'s address (its DHCP lease)")
		}
		if a, ok := c.facts.SLAAC(u.Name); ok {
			put(a.Address.Addr(), "uplink "+u.Name+"'s address (SLAAC)")
		}
		links[u.Interface] = "uplink " + u.Name + "'s address"
	}
	for _, t := range spec.Tunnels {
		links[t.Interface] = "tunnel " + t.Name + "'s address"
		if lk, ok := c.facts.Link("tunnel/" + t.Name); ok {
			links[lk.Name] = "tunnel " + t.Name + "'s address"
			for _, p := range lk.Addresses {
				put(p.Addr(), "tunnel "+t.Name+"'s address")
			}
		}
	}
	for _, a := range c.addrs {
		if what, ok := links[a.Link]; ok {
			put(a.Prefix.Addr(), what)
		}
	}
	return wan
}

// dns compiles the dns section into session[dns/resolver]: the forwarder
// on the addresses of dnsListen, port 53, asking the upstreams in the
// spec's order (each expanded: "peer" to aggregation.peer.dns through the
// peer; "uplink:NAME" to each resolver that uplink learnt, by its lease or
// its adverts, leaving by its table's mark, and none while the uplink is
// withdrawn for its health or its link is missing; an address to itself,
// by the box's routing), falling back to every healthy uplink's learnt
// resolvers that are not upstreams already when all of them are dead;
// the AAAA policy; and the
// per-domain egress of routes[].domains into each uplink's egress sets.
// It waits while it has nowhere to listen (the LAN's link is missing, or
// its only addresses are delegated and the prefix has not come) and does
// not intercept.
func (c *compiler) dns(spec *api.RouterSpec) error {
	d := spec.DNS
	if d == nil {
		c.domainsWithoutDNS(spec)
		return nil
	}
	listen, err := c.dnsListen(spec)
	if err != nil {
		return err
	}
	if err := interceptChecks(spec); err != nil {
		return err
	}
	cfg := dns.Config{Listen: listen, Port: dns.Port, AAAA: cmp.Or(d.AAAA, api.DefaultAAAA), FilterAAAA: d.FilterAAAA}
	if intercepts(spec) {
		cfg.InterceptPort = dns.InterceptPort
	}
	for i, u := range d.Upstreams {
		switch name, isUplink := strings.CutPrefix(u, "uplink:"); {
		case u == "peer":
			a := spec.Aggregation
			if a == nil || a.Peer == nil || a.Peer.DNS == "" {
				return fmt.Errorf("dns.upstreams[%d]: peer needs aggregation.peer.dns", i)
			}
			addr, err := resolverAddr(a.Peer.DNS)
			if err != nil {
				return fmt.Errorf("aggregation.peer.dns: %w", err)
			}
			cfg.Upstreams = append(cfg.Upstreams, upstream.Resolver{Name: "peer", Addr: addr, Peer: true})
			cfg.Peer = &dns.Peer{Address: a.Peer.Address, Cipher: a.Peer.Cipher, Key: a.Peer.Key}
		case isUplink:
			cfg.Upstreams = append(cfg.Upstreams, c.uplinkResolvers(name, u)...)
		default:
			addr, err := resolverAddr(u)
			if err != nil {
				return fmt.Errorf("dns.upstreams[%d]: %w", i, err)
			}
			cfg.Upstreams = append(cfg.Upstreams, upstream.Resolver{Name: u, Addr: addr})
		}
	}
	ups := slices.Clone(spec.Uplinks)
	slices.SortStableFunc(ups, func(a, b api.Uplink) int { return cmp.Compare(a.Priority, b.Priority) })
	for _, u := range ups {
		for _, r := range c.uplinkResolvers(u.Name, "uplink:"+u.Name) {
			// An upstream already: dead when the fallback is asked, and
			// one resolver in the pool (probed and shown once).
			if !slices.Contains(cfg.Upstreams, r) {
				cfg.Fallback = append(cfg.Fallback, r)
			}
		}
	}
	byUplink := map[string]int{}
	for _, r := range spec.Routes {
		if len(r.Domains) == 0 {
			continue
		}
		i, ok := byUplink[r.Via]
		if !ok {
			i = len(cfg.Egress)
			byUplink[r.Via] = i
			cfg.Egress = append(cfg.Egress, dns.Egress{Uplink: r.Via, Set4: egressSet(r.Via, false), Set6: egressSet(r.Via, true)})
		}
		for _, n := range r.Domains {
			if !slices.Contains(cfg.Egress[i].Domains, n) {
				cfg.Egress[i].Domains = append(cfg.Egress[i].Domains, n)
			}
		}
	}
	var wait string
	// Intercept alone needs no address: its transparent sockets answer
	// from the address each query was sent to.
	if len(listen) == 0 && cfg.InterceptPort == 0 {
		switch l := spec.LAN; {
		case l != nil && !c.present(l.Interface):
			wait = "link " + l.Interface
		default:
			wait = "an address on the LAN to listen on"
		}
	}
	c.specs = append(c.specs, session.Spec{Kind: dns.Kind, Name: dns.Name, Config: cfg, Wait: wait})
	return c.interceptDNS(spec)
}

// uplinkResolvers lists the resolvers uplink learnt (its lease's option 6,
// then its adverts' RDNSS), named name, each leaving by the uplink's
// table's mark; none while the uplink is withdrawn for its health or its
// link is missing. A link-local resolver (an RDNSS may name one) needs the
// uplink's interface as its zone.
func (c *compiler) uplinkResolvers(uplink, name string) []upstream.Resolver {
	st := c.uplinks[uplink]
	if st == nil || st.missing != "" || c.down[uplink] {
		return nil
	}
	var addrs []netip.Addr
	if l, ok := c.facts.Lease4(uplink); ok {
		addrs = append(addrs, l.DNS...)
	}
	if a, ok := c.facts.SLAAC(uplink); ok {
		for _, r := range a.DNS {
			addrs = append(addrs, r.Addr)
		}
	}
	var out []upstream.Resolver
	for _, a := range addrs {
		if !a.IsValid() || a.IsUnspecified() || a.IsMulticast() {
			continue
		}
		if a.Is6() && a.IsLinkLocalUnicast() {
			a = a.WithZone(st.link)
		}
		r := upstream.Resolver{Name: name, Addr: netip.AddrPortFrom(a.Unmap(), api.DefaultDNSPort), Uplink: uplink, Mark: uint32(st.table)}
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}

// resolverAddr parses ADDR or ADDR:PORT (port 53 when not written).
func resolverAddr(s string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%q: want ADDRESS or ADDRESS:PORT", s)
	}
	return netip.AddrPortFrom(a.Unmap(), api.DefaultDNSPort), nil
}

// domainsWithoutDNS notes routes[].domains in a spec without a dns
// section: nothing resolves those names, so nothing fills the sets.
func (c *compiler) domainsWithoutDNS(spec *api.RouterSpec) {
	for i, r := range spec.Routes {
		if len(r.Domains) > 0 {
			c.note(fmt.Sprintf("routes[%d].domains", i), "no dns section: per-domain egress follows the answers of braid's resolver, which the spec does not run")
			return
		}
	}
}

// Intercept rule IDs start with this.
const interceptID = "dns-intercept"

// intercepts reports whether spec intercepts the LAN's DNS
// (dns.intercept, with a LAN).
func intercepts(spec *api.RouterSpec) bool {
	return spec.DNS != nil && spec.DNS.Intercept && spec.LAN != nil
}

// interceptRules adds to rs, with dns.intercept, the rules of the tproxy
// chain that hand the LAN's DNS (UDP and TCP port 53, both families) to
// an address that is not the box's own to the forwarder's transparent
// sockets (dns.InterceptPort), marked with nl.TableProxy so that the
// policy rule of proxyDelivery delivers it to the box; each rule then
// ends the chain, so that the proxy's steering never sees an intercepted
// query. What the LAN asks of the box's own addresses is untouched.
//
// tproxy hands a packet over only while a socket listens with
// IP_TRANSPARENT on the port, and lets it through untouched otherwise:
// with the forwarder's process gone (kill -9, a crash), the rules left
// behind do nothing and the LAN's queries go where they were sent. The
// rules are process-bound to the forwarder (the caller binds them).
func interceptRules(rs *nft.Ruleset, spec *api.RouterSpec) {
	if !intercepts(spec) {
		return
	}
	for _, v6 := range []bool{false, true} {
		for _, proto := range []string{"udp", "tcp"} {
			rs.Add(nft.ChainTProxy, interceptID+"-"+proto+familySuffix(v6),
				nft.IIFName(spec.LAN.Interface), nft.DstNotLocal(), nft.DPort(proto, dns.Port),
				nft.TProxy(proto, v6, dns.InterceptPort), nft.SetMark(nl.TableProxy), nft.Return())
		}
	}
}

// interceptDNS compiles dns.intercept when the proxy's steering does not
// hold it (c.proxySteers): the tproxy chain with interceptRules alone,
// and proxyDelivery, all process-bound to the forwarder. The forwarder
// listens on dns.InterceptPort (its Config.InterceptPort, set by dns).
func (c *compiler) interceptDNS(spec *api.RouterSpec) error {
	if !intercepts(spec) || c.proxySteers {
		return nil
	}
	rs := nft.NewRuleset()
	interceptRules(rs, spec)
	objs, err := rs.Resources()
	if err != nil {
		return fmt.Errorf("dns.intercept: %w", err)
	}
	for _, r := range proxyDelivery() {
		c.nftObjs = append(c.nftObjs, plan.ProcessBound{Resource: r, Owner: dnsSession})
	}
	for _, r := range objs {
		if _, ok := r.(nft.Table); ok {
			continue // the firewall's
		}
		c.nftObjs = append(c.nftObjs, plan.ProcessBound{Resource: r, Owner: dnsSession})
	}
	return nil
}

// interceptChecks refuses what dns.intercept cannot work with: an uplink
// on the table its marked queries are delivered by, a WAN port opened to
// its transparent sockets.
func interceptChecks(spec *api.RouterSpec) error {
	if !intercepts(spec) {
		return nil
	}
	for _, u := range spec.Uplinks {
		if u.Table == nl.TableProxy {
			return fmt.Errorf("uplinks[%s].table: table %d delivers what braid's resolver intercepts (dns.intercept); choose another", u.Name, u.Table)
		}
	}
	if fw := spec.Firewall; fw != nil {
		for i, o := range fw.Open {
			if o.Port == dns.InterceptPort {
				return fmt.Errorf("firewall.open[%d]: port %d is braid's resolver's intercept (dns.intercept): the WAN must not reach it", i, o.Port)
			}
		}
	}
	return nil
}
