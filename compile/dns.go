package compile

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/braid-router/braid/api"
	nft "github.com/braid-router/braid/drivers/nftables"
	"github.com/braid-router/braid/reconcile/plan"
	"github.com/braid-router/braid/session"
	"github.com/braid-router/braid/sessions/dns"
	"github.com/braid-router/braid/sessions/dns/upstream"
)

// dnsSession is the forwarder's session, session[dns/resolver]: what its
// process-bound objects (the intercept rules) belong to.
var dnsSession = session.Spec{Kind: dns.Kind, Name: dns.Name}.ID()

// dnsListen returns where the forwarder listens: for "lan", every
// address braid holds on the LAN interface now (lan.addresses and the
// box's address in a delegated prefix, once it is there), link-local ones
// left out (they need a zone); then the explicit addresses, once each.
// onLAN are those of them that are on the LAN link, which intercept may
// send the LAN's DNS to. It reads the addresses the compile already
// wants (c.addrs), so it must run after the LAN's and the delegation's.
func (c *compiler) dnsListen(spec *api.RouterSpec) (listen, onLAN []netip.Addr, err error) {
	d := spec.DNS
	if d == nil {
		return nil, nil, nil
	}
	var lan []netip.Addr
	if l := spec.LAN; l != nil {
		for _, a := range c.addrs {
			if a.Link == l.Interface && !a.Prefix.Addr().IsLinkLocalUnicast() && !slices.Contains(lan, a.Prefix.Addr()) {
				lan = append(lan, a.Prefix.Addr())
			}
		}
	}
	add := func(a netip.Addr) {
		if !slices.Contains(listen, a) {
			listen = append(listen, a)
			if slices.Contains(lan, a) {
				onLAN = append(onLAN, a)
			}
		}
	}
	for i, l := range d.Listen {
		if l == "lan" {
			for _, a := range lan {
				add(a)
			}
			continue
		}
		a, err := netip.ParseAddr(l)
		if err != nil {
			return nil, nil, fmt.Errorf("dns.listen[%d]: %w", i, err)
		}
		add(a.Unmap())
	}
	return listen, onLAN, nil
}

// dns compiles the dns section into session[dns/resolver]: the forwarder
// on the addresses of dnsListen, port 53, asking the upstreams in the
// spec's order (each expanded: "peer" to aggregation.peer.dns through the
// peer; "uplink:NAME" to each resolver that uplink learnt, by its lease or
// its adverts, leaving by its table's mark, and none while the uplink is
// withdrawn for its health or its link is missing; an address to itself,
// by the box's routing), falling back to every healthy uplink's learnt
// resolvers when all of them are dead; the AAAA policy; and the
// per-domain egress of routes[].domains into each uplink's egress sets.
// It waits while it has nowhere to listen (the LAN's link is missing, or
// its only addresses are delegated and the prefix has not come).
func (c *compiler) dns(spec *api.RouterSpec) error {
	d := spec.DNS
	if d == nil {
		c.domainsWithoutDNS(spec)
		return nil
	}
	listen, _, err := c.dnsListen(spec)
	if err != nil {
		return err
	}
	cfg := dns.Config{Listen: listen, Port: dns.Port, AAAA: cmp.Or(d.AAAA, api.DefaultAAAA), FilterAAAA: d.FilterAAAA}
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
		cfg.Fallback = append(cfg.Fallback, c.uplinkResolvers(u.Name, "uplink:"+u.Name)...)
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
	if len(listen) == 0 {
		switch l := spec.LAN; {
		case l != nil && !c.present(l.Interface):
			wait = "link " + l.Interface
		default:
			wait = "an address on the LAN to listen on"
		}
	}
	c.specs = append(c.specs, session.Spec{Kind: dns.Kind, Name: dns.Name, Config: cfg, Wait: wait})
	return nil
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

// interceptDNS adds to the dstnat chain, with dns.intercept, the
// redirection of the LAN's DNS (UDP and TCP port 53) to any address that
// is not the box's own to braid's forwarder: a DNAT to the first address
// it listens on that the LAN link holds, per family (a family with none
// is not intercepted: a note says so). What the LAN asks of the box's own
// addresses is untouched. The rules are process-bound to the forwarder
// (bindIntercept): with it not running, the LAN's queries go where they
// were sent.
func (c *compiler) interceptDNS(rs *nft.Ruleset, spec *api.RouterSpec, lanIf string) error {
	d := spec.DNS
	if d == nil || !d.Intercept || lanIf == "" {
		return nil
	}
	_, onLAN, err := c.dnsListen(spec)
	if err != nil {
		return err
	}
	var to [2]netip.Addr // IPv4, IPv6
	for _, a := range onLAN {
		i := 0
		if a.Is6() {
			i = 1
		}
		if !to[i].IsValid() {
			to[i] = a
		}
	}
	if !to[0].IsValid() && !to[1].IsValid() {
		return nil // the session waits for an address; so does intercept
	}
	rs.Add(nft.ChainDNAT, interceptID+"-local", nft.IIFName(lanIf), nft.DstLocal(), nft.Return())
	for i, a := range to {
		fam := "v4"
		every := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
		if i == 1 {
			fam, every = "v6", netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		}
		if !a.IsValid() {
			note := c.note
			if l := spec.LAN; i == 1 && l.IPv6 != nil && (l.IPv6.FromTunnel != "" || l.IPv6.FromUplink != "") {
				note = c.wait // the delegated prefix is not there yet
			}
			note("dns.intercept", fmt.Sprintf("braid's resolver listens on no %[1]s address of the LAN: the LAN's DNS over %[1]s is not intercepted", family(every.Addr())))
			continue
		}
		for _, proto := range []string{"udp", "tcp"} {
			rs.Add(nft.ChainDNAT, interceptID+"-"+proto+"-"+fam, nft.IIFName(lanIf), nft.DstPrefix(every), nft.DPort(proto, dns.Port),
				nft.DNAT(netip.AddrPortFrom(a, dns.Port)))
		}
	}
	return nil
}

// bindIntercept makes the intercept rules of objs process-bound to the
// forwarder's session, and the dstnat chain with them when they are all
// it holds.
func bindIntercept(objs []plan.Resource) []plan.Resource {
	others := false
	for _, r := range objs {
		if rl, ok := r.(nft.Rule); ok && rl.Chain == nft.ChainDNAT && !strings.HasPrefix(rl.ID, interceptID) {
			others = true
		}
	}
	out := make([]plan.Resource, 0, len(objs))
	for _, r := range objs {
		switch o := r.(type) {
		case nft.Rule:
			if o.Chain == nft.ChainDNAT && strings.HasPrefix(o.ID, interceptID) {
				r = plan.ProcessBound{Resource: r, Owner: dnsSession}
			}
		case nft.Chain:
			if o.Name == nft.ChainDNAT && !others {
				r = plan.ProcessBound{Resource: r, Owner: dnsSession}
			}
		}
		out = append(out, r)
	}
	return out
}
