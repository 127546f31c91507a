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
	"github.com/braid-router/braid/sessions/proxy"
)

// proxySet names a set of the proxy's steering: destinations (sources,
// for routes: from:) that go direct, by family.
func proxySet(what string, v6 bool) string {
	if v6 {
		return "proxy_" + what + "_v6"
	}
	return "proxy_" + what + "_v4"
}

// familySuffix ends the ID of a rule of one family.
func familySuffix(v6 bool) string {
	if v6 {
		return "-v6"
	}
	return "-v4"
}

// proxy compiles aggregation.tcp: proxy and aggregation.udp (proxyudp.go):
// the session session[proxy/aggregation] and what steers LAN TCP (and
// UDP) into its listener, process-bound to it (the daemon keeps them
// while the session runs; a CLI run removes them):
//
//   - the chain prerouting_tproxy of braid's table: what does not come in
//     on the LAN and a connection's replies (a LAN host answering a port
//     forward) return; with dns.intercept, its rules (interceptRules,
//     bound to the forwarder) come next; then what is already marked
//     (per-domain egress, another program), what is to the box itself,
//     with dns.intercept port 53 (DNS is never proxied), to
//     aggregation.bypass, to a routes: to: prefix (it chooses its
//     uplink), from a routes: from: prefix (everything from it leaves by
//     its uplink), to the LAN's own prefixes or to the peer returns; then
//     LAN TCP of either family goes to the listener by tproxy, marked
//     with nl.TableProxy;
//   - fwmark TableProxy lookup TableProxy at nl.PrioProxy, and local
//     default dev lo in that table, both families (proxyDelivery): the
//     marked packets are delivered to the box, where the listener takes
//     them. With dns.intercept they, and the chain, are kept while either
//     session runs (plan.ProcessBound.Also).
//
// The session always runs (it probes the peer), but the steering only
// while its verdict on the peer (facts.Peer) is healthy: with the peer
// down, or not yet proven up, LAN traffic goes direct, out of the uplinks by
// plain routing and NAT, and a note says why. A healthy verdict that the
// peer relays no IPv6 (facts.Peer.NoIPv6) leaves out the IPv6 steering
// rules alone, with a note.
//
// tproxy hands a packet over only to a socket listening with
// IP_TRANSPARENT, and lets it through unmarked otherwise: with the
// proxy's process gone (a crash, kill -9), the rules left behind steer
// nothing, and LAN traffic takes plain routing.
func (c *compiler) proxy(spec *api.RouterSpec) error {
	a := spec.Aggregation
	if a == nil || a.Peer == nil || spec.LAN == nil {
		return nil
	}
	tcp, udp := cmp.Or(a.TCP, api.TCPProxy), cmp.Or(a.UDP, api.UDPPeer)
	if tcp != api.TCPProxy && udp != api.UDPPeer {
		return nil
	}
	for _, u := range spec.Uplinks {
		if u.Table == nl.TableProxy {
			return fmt.Errorf("uplinks[%s].table: table %d is braid's transparent proxy table (aggregation.tcp: proxy); choose another", u.Name, u.Table)
		}
	}
	if fw := spec.Firewall; fw != nil {
		for i, o := range fw.Open {
			if cmp.Or(o.Proto, api.DefaultProto) == "tcp" && o.Port == proxy.Port && tcp == api.TCPProxy {
				return fmt.Errorf("firewall.open[%d]: tcp port %d is the transparent proxy's listener (aggregation.tcp: proxy): the WAN must not reach it", i, proxy.Port)
			}
			if err := udpOpen(i, o, udp); err != nil {
				return err
			}
		}
	}
	id := session.Spec{Kind: proxy.Kind, Name: proxy.Name}.ID()
	c.specs = append(c.specs, session.Spec{Kind: proxy.Kind, Name: proxy.Name, Config: proxy.Config{
		Port: proxy.Port, Peer: a.Peer.Address, Protocol: a.Peer.Protocol, Cipher: a.Peer.Cipher, Key: a.Peer.Key, TCP: tcp, UDP: udp,
		Uplinks: c.probeUplinks(spec), DNS: a.Peer.DNS,
	}})

	// What goes direct, by family.
	type direct struct {
		what string
		src  bool
		p    []netip.Prefix
	}
	bypass, err := prefixes(a.Bypass)
	if err != nil {
		return fmt.Errorf("aggregation.bypass: %w", err)
	}
	var to, from []netip.Prefix
	for i, r := range spec.Routes {
		t, err := prefixes(r.To)
		if err != nil {
			return fmt.Errorf("routes[%d].to: %w", i, err)
		}
		f, err := prefixes(r.From)
		if err != nil {
			return fmt.Errorf("routes[%d].from: %w", i, err)
		}
		to, from = append(to, t...), append(from, f...)
	}
	lan, err := prefixes(spec.LAN.Addresses)
	if err != nil {
		return fmt.Errorf("lan.addresses: %w", err)
	}
	lanIf := spec.LAN.Interface
	rs := nft.NewRuleset()
	rs.Add(nft.ChainTProxy, "not-lan", nft.IIFNameNot(lanIf), nft.Return())
	// A LAN host's answers to a connection opened from outside (a port
	// forward) are not new connections to proxy.
	rs.Add(nft.ChainTProxy, "reply", nft.CtDirectionReply(), nft.Return())
	// The LAN's DNS to other resolvers is braid's forwarder's
	// (dns.intercept), before anything else may let it go direct; what
	// its rules do not take (the forwarder is not running) goes direct.
	interceptRules(rs, spec)
	rs.Add(nft.ChainTProxy, "marked", nft.Marked(), nft.Return())
	rs.Add(nft.ChainTProxy, "local", nft.DstLocal(), nft.Return())
	if intercepts(spec) {
		for _, proto := range []string{"udp", "tcp"} {
			rs.Add(nft.ChainTProxy, "dns-"+proto, nft.DPort(proto, dns.Port), nft.Return())
		}
	}
	for _, d := range []direct{
		{what: "bypass", p: bypass},
		{what: "routes", p: to},
		{what: "from", src: true, p: from},
		{what: "lan", p: lan},
	} {
		for _, v6 := range []bool{false, true} {
			var fam []netip.Prefix
			for _, p := range d.p {
				if p.Addr().Is6() == v6 {
					fam = append(fam, p)
				}
			}
			if len(fam) == 0 {
				continue
			}
			set := proxySet(d.what, v6)
			rs.AddSet(set, v6, fam)
			match := nft.DstInSet(set, v6)
			if d.src {
				match = nft.SrcInSet(set, v6)
			}
			rs.Add(nft.ChainTProxy, d.what+familySuffix(v6), match, nft.Return())
		}
	}
	if peer, err := netip.ParseAddrPort(a.Peer.Address); err == nil {
		addr := peer.Addr().Unmap()
		rs.Add(nft.ChainTProxy, "peer", nft.DstPrefix(netip.PrefixFrom(addr, addr.BitLen())), nft.Return())
	}
	// A peer that relays no IPv6 (it closed IPv6 connections without a
	// byte, its dial failing): LAN IPv6 goes direct, IPv4 still through
	// the peer.
	families := []bool{false, true}
	if h, ok := c.facts.Peer(a.Peer.Address); ok && h.Healthy && h.NoIPv6 {
		families = families[:1]
		c.note("aggregation", "the peer relays no IPv6: LAN IPv6 goes direct")
	}
	for _, v6 := range families {
		if tcp == api.TCPProxy {
			rs.Add(nft.ChainTProxy, "tcp"+familySuffix(v6), nft.IIFName(lanIf), nft.TProxy("tcp", v6, proxy.Port), nft.SetMark(nl.TableProxy))
		}
	}
	proxyUDP(rs, udp, lanIf, families)
	objs, err := rs.Resources()
	if err != nil {
		return fmt.Errorf("aggregation: %w", err)
	}

	// The guard: everything that steers LAN traffic into the proxy (the
	// rules and sets above, the mark's rule and table below) waits for
	// the peer's health verdict.
	if h, ok := c.facts.Peer(a.Peer.Address); !ok || !h.Healthy {
		why := "not proven up yet"
		if ok {
			why = "down: " + cmp.Or(h.Reason, "unhealthy")
		}
		c.wait("aggregation", "peer "+why+": LAN traffic goes direct")
		return nil
	}
	// What intercept shares (the chain, the local delivery) is kept
	// while either session runs; its own rules only while the forwarder
	// does.
	var also string
	if intercepts(spec) {
		also = dnsSession
	}
	c.proxySteers = true
	for _, r := range proxyDelivery() {
		c.nftObjs = append(c.nftObjs, plan.ProcessBound{Resource: r, Owner: id, Also: also})
	}
	for _, r := range objs {
		b := plan.ProcessBound{Resource: r, Owner: id}
		switch o := r.(type) {
		case nft.Table:
			continue // the firewall's
		case nft.Chain:
			b.Also = also
		case nft.Rule:
			if strings.HasPrefix(o.ID, interceptID) {
				b.Owner = dnsSession
			}
		}
		c.nftObjs = append(c.nftObjs, b)
	}
	return nil
}

// proxyDelivery is what delivers the packets the tproxy chain marked
// with nl.TableProxy to the box, where the transparent socket they were
// handed to takes them (the proxy's listener, the forwarder's intercept):
// fwmark TableProxy lookup TableProxy at nl.PrioProxy and local default
// dev lo in that table, both families. The caller binds them to the
// sessions whose sockets they serve. The netlink objects ride in the last
// list desired() adds: the engine hands them to the netlink driver, after
// its other objects.
func proxyDelivery() []plan.Resource {
	return []plan.Resource{
		nl.Route{Table: nl.TableProxy, Dst: netip.PrefixFrom(netip.IPv4Unspecified(), 0), Metric: metricTable4, Type: nl.Local, Link: "lo"},
		nl.Route{Table: nl.TableProxy, Dst: netip.PrefixFrom(netip.IPv6Unspecified(), 0), Metric: metricTable6, Type: nl.Local, Link: "lo"},
		nl.Rule{Priority: nl.PrioProxy, Mark: nl.TableProxy, Table: nl.TableProxy, SuppressPrefixlen: -1},
		nl.Rule{Priority: nl.PrioProxy, IPv6: true, Mark: nl.TableProxy, Table: nl.TableProxy, SuppressPrefixlen: -1},
	}
}

// probeUplinks lists the uplinks the proxy probes its peer over: those
// whose link is there and that health has not withdrawn (their mark's
// policy rule is in place), by priority, each with its MPTCP endpoints'
// addresses.
func (c *compiler) probeUplinks(spec *api.RouterSpec) []proxy.Uplink {
	var ups []*api.Uplink
	for i := range spec.Uplinks {
		u := &spec.Uplinks[i]
		if st := c.uplinks[u.Name]; st == nil || st.missing != "" || c.down[u.Name] {
			continue
		}
		ups = append(ups, u)
	}
	slices.SortStableFunc(ups, func(a, b *api.Uplink) int { return cmp.Compare(a.Priority, b.Priority) })
	out := make([]proxy.Uplink, 0, len(ups))
	for _, u := range ups {
		pu := proxy.Uplink{Name: u.Name, Mark: uint32(u.Table)}
		// Its MPTCP endpoints, as mptcp() compiles them: the proxy
		// tells its subflows by them.
		if u.MPTCP != nil && u.MPTCP.Mode != api.MPTCPOff {
			for _, p := range c.uplinks[u.Name].addrs() {
				pu.Endpoints = append(pu.Endpoints, p.Addr())
			}
		}
		out = append(out, pu)
	}
	return out
}
