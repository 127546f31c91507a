package compile

import (
	"cmp"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/braid-router/braid/api"
	nft "github.com/braid-router/braid/drivers/nftables"
	"github.com/braid-router/braid/reconcile/plan"
)

// Rule sets of the router firewall (RFC 4890 for ICMPv6).
var (
	// inputICMP are the ICMP messages the box accepts from anywhere.
	inputICMP = []nft.ICMPType{nft.ICMPEchoRequest, nft.ICMPDestUnreachable, nft.ICMPTimeExceeded, nft.ICMPParameterProblem}
	// inputICMPv6 are the ICMPv6 messages the box accepts from anywhere:
	// errors, echo, and neighbour discovery and router discovery (which
	// the kernel itself checks, hop limit 255 and all).
	inputICMPv6 = []nft.ICMPv6Type{
		nft.ICMPv6DestUnreachable, nft.ICMPv6PacketTooBig, nft.ICMPv6TimeExceeded, nft.ICMPv6ParameterProblem,
		nft.ICMPv6EchoRequest, nft.ICMPv6EchoReply,
		nft.ICMPv6RouterSolicit, nft.ICMPv6RouterAdvert, nft.ICMPv6NeighborSolicit, nft.ICMPv6NeighborAdvert,
	}
	// inputMLD are the multicast listener messages the box accepts from
	// link-local sources only.
	inputMLD = []nft.ICMPv6Type{nft.ICMPv6MLDQuery, nft.ICMPv6MLDReport, nft.ICMPv6MLDDone, nft.ICMPv6MLD2Report}
	// forwardICMPv6 are the ICMPv6 messages routed in transit, whatever
	// the direction: without them path MTU discovery breaks.
	forwardICMPv6 = []nft.ICMPv6Type{
		nft.ICMPv6DestUnreachable, nft.ICMPv6PacketTooBig, nft.ICMPv6TimeExceeded, nft.ICMPv6ParameterProblem,
		nft.ICMPv6EchoRequest, nft.ICMPv6EchoReply,
	}
	// icmpErrors and icmpv6Errors are accepted before conntrack's invalid
	// verdict, in input and forward (fragmentation needed is a destination
	// unreachable, code 4).
	icmpErrors   = []nft.ICMPType{nft.ICMPDestUnreachable, nft.ICMPTimeExceeded, nft.ICMPParameterProblem}
	icmpv6Errors = []nft.ICMPv6Type{nft.ICMPv6DestUnreachable, nft.ICMPv6PacketTooBig, nft.ICMPv6TimeExceeded, nft.ICMPv6ParameterProblem}
	linkLocal    = netip.MustParsePrefix("fe80::/10")
)

// DHCP client ports: replies to the uplinks' DHCP sessions (DHCPv6 from
// the server's link-local address).
const (
	dhcp4Client = 68
	dhcp6Client = 546
)

// SessionSet reports whether a set of the table named is one whose
// elements a session writes (the per-domain egress sets, which the DNS
// forwarder fills answer by answer): their changes are not the kernel
// drifting from the spec, and trigger no pass (drivers/watch).
func SessionSet(table, set string) bool {
	return table == nft.TableName && strings.HasPrefix(set, "egress_")
}

// egressSet names the set of destinations that leave by an uplink: a
// timeout set, whose elements the DNS forwarder writes (per-domain
// egress: the addresses of the names routes[].domains sends by the
// uplink), each expiring on its own.
func egressSet(uplink string, v6 bool) string {
	if v6 {
		return "egress_" + uplink + "_v6"
	}
	return "egress_" + uplink + "_v4"
}

// fwUplink is what the firewall needs of an uplink, or of a tunnel,
// which the firewall treats as an uplink without NAT, marks or DHCPv4.
type fwUplink struct {
	name, link string
	table      int
	tunnel     bool
}

// firewall compiles NAT, the router firewall, port forwards, marks and
// sets into the nftables driver's resources (c.nftObjs): braid's table
// `inet braid`.
//
//   - prerouting_mangle marks the connections to an uplink's egress sets
//     with the uplink's table number, and their packets (see egressMarks);
//   - prerouting_nat forwards IPv4 ports to LAN hosts (firewall.forward);
//   - input accepts established traffic, loopback, the LAN,
//     management.allow, the ICMP and ICMPv6 of RFC 4890, DHCP replies on
//     uplinks and firewall.open, then drops what arrives on an uplink;
//     the policy accepts, so interfaces braid does not manage are never
//     cut off;
//   - forward accepts established traffic, transit ICMPv6, LAN to uplinks,
//     port forwards (ct status dnat) and IPv6 forwards (routed, no NAT),
//     then drops what arrives on an uplink;
//   - postrouting_nat masquerades the LAN's IPv4 prefixes out of each
//     uplink. IPv6 is routed, never NATed.
func (c *compiler) firewall(spec *api.RouterSpec) error {
	rs := nft.NewRuleset()
	var lanIf string
	var lan4 []netip.Prefix
	if l := spec.LAN; l != nil {
		lanIf = l.Interface
		for _, a := range l.Addresses {
			p, err := netip.ParsePrefix(a)
			if err != nil {
				return fmt.Errorf("lan.addresses: %w", err)
			}
			if p = p.Masked(); p.Addr().Is4() && !slices.Contains(lan4, p) {
				lan4 = append(lan4, p)
			}
		}
	}
	uplinks := make([]fwUplink, 0, len(spec.Uplinks))
	for _, u := range spec.Uplinks {
		uplinks = append(uplinks, fwUplink{name: u.Name, link: u.Interface, table: u.Table})
	}
	// wans are the uplinks and the tunnels: where the Internet comes in.
	// A tunnel's rules carry "tunnel-NAME", apart from the uplinks'.
	wans := slices.Clone(uplinks)
	for _, t := range c.tunnelStates {
		wans = append(wans, fwUplink{name: "tunnel-" + t.name, link: t.link, table: t.table, tunnel: true})
	}
	allow4, allow6, err := managementAllow(spec.Management)
	if err != nil {
		return err
	}
	fw := spec.Firewall
	if fw == nil {
		fw = &api.Firewall{}
	}
	dnat, forward6, err := forwards(fw.Forward, wans)
	if err != nil {
		return err
	}

	// Sets.
	allowSets(rs, allow4, allow6)
	for _, u := range uplinks {
		rs.AddTimeoutSet(egressSet(u.name, false), false)
		rs.AddTimeoutSet(egressSet(u.name, true), true)
	}
	c.egressMarks(rs, uplinks)

	// Port forwards to IPv4 hosts.
	for _, r := range dnat {
		rs.Add(nft.ChainDNAT, r.id, r.stmts...)
	}

	// The router's own firewall.
	inputHead(rs)
	if lanIf != "" {
		rs.Add(nft.ChainInput, "lan", nft.IIFName(lanIf), nft.Accept())
	}
	allowRules(rs, allow4, allow6)
	inputICMPRules(rs)
	for _, u := range wans {
		if !u.tunnel {
			rs.Add(nft.ChainInput, "dhcpv4-"+u.name, nft.IIFName(u.link), nft.DPort("udp", dhcp4Client), nft.Accept())
		}
		rs.Add(nft.ChainInput, "dhcpv6-"+u.name, nft.IIFName(u.link), nft.SrcPrefix(linkLocal), nft.DPort("udp", dhcp6Client), nft.Accept())
	}
	c.tunnelFirewall(rs)
	for i, o := range fw.Open {
		from, err := prefixes(o.From)
		if err != nil {
			return fmt.Errorf("firewall.open[%d].from: %w", i, err)
		}
		proto := cmp.Or(o.Proto, api.DefaultProto)
		id := "open-" + proto + "-" + strconv.Itoa(o.Port)
		for _, u := range wans {
			for _, f := range fromOrAny(from) {
				stmts := []nft.Stmt{nft.IIFName(u.link)}
				if f.IsValid() {
					stmts = append(stmts, nft.SrcPrefix(f))
				}
				stmts = append(stmts, nft.DPort(proto, o.Port), nft.Accept())
				rs.Add(nft.ChainInput, id+"-"+u.name+fromID(f), stmts...)
			}
		}
	}
	for _, u := range wans {
		rs.Add(nft.ChainInput, "drop-"+u.name, nft.IIFName(u.link), nft.Drop())
	}

	// What the box routes.
	c.clampMSS(rs)
	c.rejectUnrouted6(rs, spec, lanIf)
	rs.Add(nft.ChainForward, "established", nft.CtState(nft.CtEstablished|nft.CtRelated), nft.Accept())
	icmpErrorRules(rs, nft.ChainForward)
	rs.Add(nft.ChainForward, "invalid", nft.CtState(nft.CtInvalid), nft.Drop())
	for _, t := range forwardICMPv6 {
		if !slices.Contains(icmpv6Errors, t) {
			rs.Add(nft.ChainForward, "icmpv6-"+t.String(), nft.ICMPv6(t), nft.Accept())
		}
	}
	if lanIf != "" {
		for _, u := range wans {
			rs.Add(nft.ChainForward, "lan-"+u.name, nft.IIFName(lanIf), nft.OIFName(u.link), nft.Accept())
		}
	}
	// Port forwards, braid's and any other program's.
	rs.Add(nft.ChainForward, "dnat", nft.CtStatusDNAT(), nft.Accept())
	for _, r := range forward6 {
		rs.Add(nft.ChainForward, r.id, r.stmts...)
	}
	for _, u := range wans {
		rs.Add(nft.ChainForward, "drop-"+u.name, nft.IIFName(u.link), nft.Drop())
	}

	// NAT of the LAN's IPv4.
	for _, u := range uplinks {
		for _, p := range lan4 {
			rs.Add(nft.ChainSNAT, "masquerade-"+u.name+"-"+p.String(), nft.OIFName(u.link), nft.SrcPrefix(p), nft.Masquerade())
		}
	}

	objs, err := rs.Resources()
	if err != nil {
		return fmt.Errorf("firewall: %w", err)
	}
	c.nftObjs = append(c.nftObjs, objs...)
	return nil
}

// egressMarks steers the connections to an uplink's egress sets by its
// table: the policy rule fwmark TABLE lookup TABLE (PrioMark) maps the
// mark to the table. The mark is chosen at a connection's first packet
// and kept in its conntrack mark for the rest of it, so that a flow keeps
// its uplink after the address's element expired (or was never renewed):
//
//   - restore-UPLINK: a packet of a connection marked with the uplink's
//     table gets that mark (ct mark TABLE meta mark set ct mark); the
//     proxy's chain, after this one, lets marked packets go direct, as it
//     did the connection's first packet;
//   - egress-UPLINK-v4, -v6: the first packet of a connection (ct state
//     new) to an address of the uplink's set is marked, and so is its
//     connection. A connection that was under way when the address came
//     into the set keeps its path: moving it would break its NAT, or take
//     it from the proxy that carries it.
//
// An uplink health withdraws loses its egress rules, so that new
// connections to its sets follow the main table, and its fwmark policy
// rule (see uplink), but not its restore rule: the packets of its marked
// connections keep their mark, which no policy rule maps any more, so
// they follow the main table too, out of a healthy uplink (never a
// black hole), and skip the proxy, as before. When the uplink comes back,
// its policy rule does, and its connections' packets take it again.
//
// The connection marks braid sets are its uplinks' table numbers; the
// proxy's mark (TableProxy) is set on packets only, never saved, and the
// box's own sockets' marks (SO_MARK: health probes, upstream resolvers)
// never reach a connection's mark: only the rules here write it.
func (c *compiler) egressMarks(rs *nft.Ruleset, uplinks []fwUplink) {
	for _, u := range uplinks {
		rs.Add(nft.ChainMangle, "restore-"+u.name, nft.CtMark(uint32(u.table)), nft.RestoreMark())
	}
	for _, u := range uplinks {
		if c.down[u.name] {
			continue
		}
		for _, v6 := range []bool{false, true} {
			id := "egress-" + u.name + familySuffix(v6)
			rs.Add(nft.ChainMangle, id, nft.CtState(nft.CtNew), nft.DstInSet(egressSet(u.name, v6), v6),
				nft.SetMark(uint32(u.table)), nft.SetCtMark(uint32(u.table)))
		}
	}
}

// peerFirewall compiles a peer's own firewall (kind: Peer) into braid's
// table, with the router's rules where they are the same. Without
// management.allow it is nothing at all: braid adds no input drops on a
// peer nobody said how to manage. With it, input accepts established
// traffic, the ICMP errors, loopback, management.allow (every port and
// protocol), the rest of the ICMP and ICMPv6 of RFC 4890 (neighbour and
// router discovery among them), DHCP replies (a rented server often gets
// its address by DHCP) and the listener (its port in TCP for the boxes'
// streams and subflows, in UDP for the relay, both families), then drops
// the rest, whatever interface it arrives on.
func peerFirewall(spec *api.PeerSpec) ([]plan.Resource, error) {
	allow4, allow6, err := managementAllow(spec.Management)
	if err != nil {
		return nil, err
	}
	if len(allow4)+len(allow6) == 0 {
		return nil, nil
	}
	port := 0
	if spec.Listen != "" {
		_, p, err := net.SplitHostPort(spec.Listen)
		if err == nil {
			port, err = strconv.Atoi(p)
		}
		if err != nil {
			return nil, fmt.Errorf("listen: %q: want HOST:PORT", spec.Listen)
		}
	}
	rs := nft.NewRuleset()
	allowSets(rs, allow4, allow6)
	inputHead(rs)
	allowRules(rs, allow4, allow6)
	inputICMPRules(rs)
	rs.Add(nft.ChainInput, "dhcpv4", nft.DPort("udp", dhcp4Client), nft.Accept())
	rs.Add(nft.ChainInput, "dhcpv6", nft.SrcPrefix(linkLocal), nft.DPort("udp", dhcp6Client), nft.Accept())
	if port != 0 {
		rs.Add(nft.ChainInput, "listen-tcp", nft.DPort("tcp", port), nft.Accept())
		rs.Add(nft.ChainInput, "listen-udp", nft.DPort("udp", port), nft.Accept())
	}
	rs.Add(nft.ChainInput, "drop", nft.Drop())
	objs, err := rs.Resources()
	if err != nil {
		return nil, fmt.Errorf("firewall: %w", err)
	}
	return objs, nil
}

// managementAllow parses management.allow, IPv4 and IPv6 apart.
func managementAllow(m *api.Management) (allow4, allow6 []netip.Prefix, err error) {
	if m == nil {
		return nil, nil, nil
	}
	for i, s := range m.Allow {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, nil, fmt.Errorf("management.allow[%d]: %w", i, err)
		}
		if p.Addr().Is4() {
			allow4 = append(allow4, p)
		} else {
			allow6 = append(allow6, p)
		}
	}
	return allow4, allow6, nil
}

// allowSets declares the sets of management.allow, allow_v4 and
// allow_v6, each when it has a prefix.
func allowSets(rs *nft.Ruleset, allow4, allow6 []netip.Prefix) {
	if len(allow4) > 0 {
		rs.AddSet("allow_v4", false, allow4)
	}
	if len(allow6) > 0 {
		rs.AddSet("allow_v6", true, allow6)
	}
}

// allowRules accepts in input whatever comes from management.allow (the
// sets of allowSets), to any port and protocol.
func allowRules(rs *nft.Ruleset, allow4, allow6 []netip.Prefix) {
	if len(allow4) > 0 {
		rs.Add(nft.ChainInput, "allow-v4", nft.SrcInSet("allow_v4", false), nft.Accept())
	}
	if len(allow6) > 0 {
		rs.Add(nft.ChainInput, "allow-v6", nft.SrcInSet("allow_v6", true), nft.Accept())
	}
}

// inputHead adds the rules every input chain braid writes starts with:
// established and related traffic, the ICMP errors, the drop of invalid
// packets, and loopback.
func inputHead(rs *nft.Ruleset) {
	rs.Add(nft.ChainInput, "established", nft.CtState(nft.CtEstablished|nft.CtRelated), nft.Accept())
	// ICMP and ICMPv6 errors pass before conntrack's invalid verdict: one
	// for a flow conntrack has not seen (asymmetric paths over two uplinks,
	// a flow that moved to another uplink when its first one failed) is
	// "invalid", and dropping a fragmentation needed or a Packet Too Big
	// breaks path MTU discovery (RFC 1191; RFC 4890, 4.3.1).
	icmpErrorRules(rs, nft.ChainInput)
	rs.Add(nft.ChainInput, "invalid", nft.CtState(nft.CtInvalid), nft.Drop())
	rs.Add(nft.ChainInput, "loopback", nft.IIFName("lo"), nft.Accept())
}

// inputICMPRules accepts in input the ICMP and ICMPv6 messages RFC 4890
// says must reach a host, other than the errors inputHead accepts: echo,
// neighbour and router discovery, and MLD from link-local sources.
func inputICMPRules(rs *nft.Ruleset) {
	for _, t := range inputICMP {
		if !slices.Contains(icmpErrors, t) {
			rs.Add(nft.ChainInput, "icmp-"+t.String(), nft.ICMP(t), nft.Accept())
		}
	}
	for _, t := range inputICMPv6 {
		if !slices.Contains(icmpv6Errors, t) {
			rs.Add(nft.ChainInput, "icmpv6-"+t.String(), nft.ICMPv6(t), nft.Accept())
		}
	}
	for _, t := range inputMLD {
		rs.Add(nft.ChainInput, "icmpv6-"+t.String(), nft.SrcPrefix(linkLocal), nft.ICMPv6(t), nft.Accept())
	}
}

// icmpErrorRules accepts the ICMP and ICMPv6 errors in chain, whatever
// conntrack thinks of them: the rules that come before its invalid verdict.
func icmpErrorRules(rs *nft.Ruleset, chain string) {
	for _, t := range icmpErrors {
		rs.Add(chain, "icmp-"+t.String(), nft.ICMP(t), nft.Accept())
	}
	for _, t := range icmpv6Errors {
		rs.Add(chain, "icmpv6-"+t.String(), nft.ICMPv6(t), nft.Accept())
	}
}

// fwRule is a rule compiled before its chain's turn.
type fwRule struct {
	id    string
	stmts []nft.Stmt
}

// forwards compiles firewall.forward: DNAT rules for IPv4 hosts on the
// uplinks, forward accept rules for IPv6 hosts (routed, so the port cannot
// change) on the uplinks and the tunnels.
func forwards(fs []api.PortForward, uplinks []fwUplink) (dnat, forward6 []fwRule, err error) {
	type key struct {
		proto string
		port  int
		v6    bool
	}
	seen := map[key]int{}
	for i, f := range fs {
		to, err := netip.ParseAddrPort(f.To)
		if err != nil {
			return nil, nil, fmt.Errorf("firewall.forward[%d].to: %w", i, err)
		}
		to = netip.AddrPortFrom(to.Addr().Unmap(), to.Port())
		v6 := to.Addr().Is6()
		proto := cmp.Or(f.Proto, api.DefaultProto)
		k := key{proto, f.Port, v6}
		if j, ok := seen[k]; ok {
			return nil, nil, fmt.Errorf("firewall.forward[%d]: %s port %d is already forwarded to an %s host by firewall.forward[%d]", i, proto, f.Port, family(to.Addr()), j)
		}
		seen[k] = i
		if v6 && int(to.Port()) != f.Port {
			return nil, nil, fmt.Errorf("firewall.forward[%d]: IPv6 is routed, never NATed: a forward to %s keeps its port, so port must be %d, not %d", i, to, to.Port(), f.Port)
		}
		all, err := prefixes(f.From)
		if err != nil {
			return nil, nil, fmt.Errorf("firewall.forward[%d].from: %w", i, err)
		}
		var from []netip.Prefix
		for _, p := range all {
			if p.Addr().Is6() == v6 {
				from = append(from, p)
			}
		}
		if len(all) > 0 && len(from) == 0 {
			return nil, nil, fmt.Errorf("firewall.forward[%d].from: no %s prefix for a forward to an %s host", i, family(to.Addr()), family(to.Addr()))
		}
		id := "forward-" + proto + "-" + strconv.Itoa(f.Port)
		for _, u := range uplinks {
			for _, p := range fromOrAny(from) {
				stmts := []nft.Stmt{nft.IIFName(u.link)}
				if v6 {
					stmts = append(stmts, nft.DstPrefix(netip.PrefixFrom(to.Addr(), 128)))
				}
				if p.IsValid() {
					stmts = append(stmts, nft.SrcPrefix(p))
				}
				stmts = append(stmts, nft.DPort(proto, f.Port))
				r := fwRule{id: id + "-" + u.name + fromID(p)}
				if u.tunnel && !v6 {
					continue // no IPv4 comes out of a tunnel, and no NAT
				}
				if v6 {
					r.stmts = append(stmts, nft.Accept())
					forward6 = append(forward6, r)
				} else {
					r.stmts = append(stmts, nft.DNAT(to))
					dnat = append(dnat, r)
				}
			}
		}
	}
	return dnat, forward6, nil
}

// prefixes parses a list of networks, masked.
func prefixes(ss []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(ss))
	for _, s := range ss {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, err
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// fromOrAny is the sources a rule is written for: each prefix, or one
// rule for any source (an invalid prefix).
func fromOrAny(from []netip.Prefix) []netip.Prefix {
	if len(from) == 0 {
		return []netip.Prefix{{}}
	}
	return from
}

// fromID is the part of a rule ID that names its source prefix.
func fromID(p netip.Prefix) string {
	if !p.IsValid() {
		return ""
	}
	return "-from-" + p.String()
}
