package foreignfw

import (
	"fmt"
	"net/netip"
)

// Kind says what an intent is for, which decides the usual fix.
type Kind string

// Kinds of intent, one per accept rule of braid's table that lets a
// flow through.
const (
	// KindLANOut: forward:lan-UPLINK, and forward:established for its
	// replies.
	KindLANOut Kind = "lan-out"
	// KindPortForward: prerouting_nat:forward-..., forward:dnat, and the
	// replies.
	KindPortForward Kind = "port-forward"
	// KindForward6: forward:forward-... (an IPv6 host, routed).
	KindForward6 Kind = "forward6"
	// KindOpen: input:open-... (firewall.open).
	KindOpen Kind = "open"
	// KindLANIn: input:lan.
	KindLANIn Kind = "lan-in"
	// KindManagement: input:allow-v4, allow-v6 (management.allow).
	KindManagement Kind = "management"
	// KindOwn: input:established, for the box's own connections out of an
	// uplink (DHCP renewals, probes, name lookups, the peer).
	KindOwn Kind = "own"
	// KindPing: input:icmp-echo-request, icmpv6-echo-request.
	KindPing Kind = "ping"
	// KindND: input:icmpv6-nd-*, neighbour and router discovery.
	KindND Kind = "nd"
)

// Intent is one thing braid's table means to let through, as the packets
// it stands for in both directions (so that replies count), with what the
// fixes need to name it.
type Intent struct {
	// ID is stable across passes: the ID of braid's rule it comes from
	// ("lan-isp1", "forward-tcp-8080-isp1").
	ID string
	// What says it for a person: "forwarded LAN traffic to wan1, and its
	// replies".
	What string
	Kind Kind
	// In and Out are the interfaces of its first packet ("" for the box).
	In, Out string
	// Proto and Port are a forward's or an open port's.
	Proto string
	Port  uint16
	// To is a forward's LAN host and port.
	To netip.AddrPort
	// From is where it may come from (none: anywhere).
	From    []netip.Prefix
	Packets []Packet
}

// Site is what braid's spec says of the box, as the intents need it.
type Site struct {
	// LAN is the LAN interface ("" for none); LANPrefixes its prefixes,
	// LANAddrs the box's addresses on it.
	LAN         string
	LANPrefixes []netip.Prefix
	LANAddrs    []netip.Addr
	Uplinks     []Uplink
}

// Uplink is one uplink as the intents need it.
type Uplink struct {
	Name, Link string
	// V4 and V6 say which families it carries; Addr4 and Addr6 its
	// addresses where known (static, or from a lease or an advert).
	V4, V6       bool
	Addr4, Addr6 netip.Addr
	// RA is set when its IPv6 comes from router advertisements.
	RA bool
}

// Open is a port of firewall.open.
type Open struct {
	Proto string
	Port  uint16
	From  []netip.Prefix
}

// Forward is a port forward of firewall.forward.
type Forward struct {
	Proto string
	Port  uint16
	To    netip.AddrPort
	From  []netip.Prefix
}

// Firewall is what the spec opens: ports, forwards, management.
type Firewall struct {
	Open       []Open
	Forward    []Forward
	Management []netip.Prefix
}

// Intents derives what braid's table lets through for a site, intent by
// intent: the LAN out of each uplink, port forwards, open ports,
// management, the LAN to the box, the box's own connections, ping, and
// neighbour discovery.
func Intents(s Site, fw Firewall) []Intent {
	var out []Intent
	if s.LAN != "" {
		for _, u := range s.Uplinks {
			if in := lanOut(s, u); len(in.Packets) > 0 {
				out = append(out, in)
			}
		}
	}
	for _, f := range fw.Forward {
		for _, u := range s.Uplinks {
			if in := forward(s, u, f); len(in.Packets) > 0 {
				out = append(out, in)
			}
		}
	}
	for _, o := range fw.Open {
		for _, u := range s.Uplinks {
			if in := open(u, o); len(in.Packets) > 0 {
				out = append(out, in)
			}
		}
	}
	for _, p := range fw.Management {
		if inLAN(s, p) {
			continue // the LAN's own: the LAN intent covers it
		}
		for _, u := range s.Uplinks {
			if in := management(u, p); len(in.Packets) > 0 {
				out = append(out, in)
			}
		}
	}
	if s.LAN != "" && len(s.LANAddrs) > 0 {
		out = append(out, lanIn(s))
	}
	for _, u := range s.Uplinks {
		if in := own(u); len(in.Packets) > 0 {
			out = append(out, in)
		}
		if in := ping(u); len(in.Packets) > 0 {
			out = append(out, in)
		}
		if u.V6 {
			out = append(out, nd(u))
		}
	}
	return out
}

func inLAN(s Site, p netip.Prefix) bool {
	for _, l := range s.LANPrefixes {
		if l.Bits() <= p.Bits() && l.Contains(p.Addr()) {
			return true
		}
	}
	return false
}

// Address ranges the flows stand for.
var (
	// Clients' ports: Linux takes them from 32768-60999, Windows and
	// macOS from 49152-65535.
	ephemeral = Ports(32768, 65535)
	anyPort   = Ports(1, 65535)
	anyHop    = Bytes(2, 254)
	// Not unicast on the Internet: the unspecified, loopback, link-local,
	// multicast and reserved ranges.
	special4 = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/8"), netip.MustParsePrefix("127.0.0.0/8"),
		netip.MustParsePrefix("169.254.0.0/16"), netip.MustParsePrefix("224.0.0.0/3")}
	special6 = []netip.Prefix{netip.MustParsePrefix("::/8"), netip.MustParsePrefix("fe80::/10"),
		netip.MustParsePrefix("fc00::/7"), netip.MustParsePrefix("ff00::/8")}
	linkLocal6 = netip.MustParsePrefix("fe80::/10")
	// TCP flags: a connection's first packet, and the others.
	synFlags    = Byte(0x02)
	ackFlags    = Points([]byte{0x10}, []byte{0x18})
	established = StatusConfirmed | StatusSeenReply
)

// internet is any unicast address beyond the LAN, of a family.
func internet(v6 bool, lan []netip.Prefix) Value {
	if v6 {
		return Top(16).Without(special6...).Without(lan...)
	}
	return Top(4).Without(special4...).Without(lan...)
}

// lanHosts is any address of the LAN's prefixes of a family.
func lanHosts(s Site, v6 bool) (Value, bool) {
	var vs []Value
	for _, p := range s.LANPrefixes {
		if p.Addr().Is6() == v6 {
			vs = append(vs, Prefix(p))
		}
	}
	if len(vs) == 0 {
		return Value{}, false
	}
	return Union(vs...), true
}

// addrOr is a known address, or any address of the family.
func addrOr(a netip.Addr, v6 bool) Value {
	if a.IsValid() {
		return Addr(a)
	}
	if v6 {
		return Top(16)
	}
	return Top(4)
}

// families lists the families an uplink carries: false for IPv4.
func (u Uplink) families() []bool {
	var out []bool
	if u.V4 {
		out = append(out, false)
	}
	if u.V6 {
		out = append(out, true)
	}
	return out
}

func (u Uplink) addr(v6 bool) Value {
	if v6 {
		return addrOr(u.Addr6, true)
	}
	return addrOr(u.Addr4, false)
}

// conversation builds a flow's first packet and its reply, for TCP or
// UDP: first goes from src:sport to dst:dport, in at in, out at out.
type conversation struct {
	v6      bool
	path    Path // of the first packet
	in, out string
	l4      uint8
	// The first packet's addresses as it arrives, is routed, and leaves.
	pre, routed, post Header
}

// packets returns the first packet and the reply. The reply's headers are
// the first's reversed: it arrives as the first left, and leaves as the
// first arrived.
func (c conversation) packets(status uint32) []Packet {
	first := Packet{IPv6: c.v6, Path: c.path, IIF: c.in, OIF: c.out, L4: c.l4, State: CtNew,
		Pre: c.pre, Routed: c.routed, Post: c.post, HopLimit: anyHop}
	rev := func(h Header) Header {
		if !h.set {
			return h
		}
		return Addrs(h.Dst, h.Src, h.Dport, h.Sport, status|established)
	}
	reply := Packet{IPv6: c.v6, IIF: c.out, OIF: c.in, L4: c.l4, State: CtEstablished, Reply: true,
		Pre: rev(c.post), Routed: rev(c.routed), Post: rev(c.pre), HopLimit: anyHop}
	if !reply.Pre.set {
		reply.Pre = reply.Routed
	}
	switch c.path {
	case ToBox:
		reply.Path = FromBox
	case FromBox:
		reply.Path = ToBox
	default:
		reply.Path = Forwarded
	}
	if c.l4 == ProtoTCP {
		first.TCPFlags, reply.TCPFlags = synFlags, ackFlags
	}
	return []Packet{first, reply}
}

// tcpUDP is a conversation over TCP and over UDP, each way.
func (c conversation) tcpUDP(status uint32) []Packet {
	var out []Packet
	for _, l4 := range []uint8{ProtoTCP, ProtoUDP} {
		c.l4 = l4
		out = append(out, c.packets(status)...)
	}
	return out
}

// echo is an echo request along a conversation's path, and its reply.
func (c conversation) echo(status uint32) []Packet {
	c.l4 = ProtoICMP
	req, rep := uint8(8), uint8(0)
	if c.v6 {
		c.l4, req, rep = ProtoICMPv6, 128, 129
	}
	ps := c.packets(status)
	ps[0].ICMPType, ps[1].ICMPType = req, rep
	for i := range ps {
		for _, h := range []*Header{&ps[i].Pre, &ps[i].Routed, &ps[i].Post} {
			if h.set {
				h.Sport, h.Dport = Value{}, Value{}
			}
		}
	}
	return ps
}

// tooBig is the ICMP error that path MTU discovery needs, coming back
// along a conversation's reply path (related to it).
func (c conversation) tooBig(status uint32) Packet {
	c.l4 = ProtoICMP
	p := c.packets(status)[1]
	p.State, p.ICMPType, p.ICMPCode = CtRelated, 3, 4 // fragmentation needed
	if c.v6 {
		p.L4, p.ICMPType, p.ICMPCode = ProtoICMPv6, 2, 0
	}
	for _, h := range []*Header{&p.Pre, &p.Routed, &p.Post} {
		if h.set {
			h.Sport, h.Dport = Value{}, Value{}
		}
	}
	return p
}

// lanOut is forwarded LAN traffic out of an uplink, and its replies
// (ICMP errors included): TCP, UDP and ping, of each family both the LAN
// and the uplink have. IPv4 is masqueraded.
func lanOut(s Site, u Uplink) Intent {
	in := Intent{ID: "lan-" + u.Name, Kind: KindLANOut, In: s.LAN, Out: u.Link,
		What: fmt.Sprintf("forwarded LAN traffic to %s, and its replies", u.Link)}
	for _, v6 := range u.families() {
		hosts, ok := lanHosts(s, v6)
		if !ok {
			continue
		}
		c := conversation{v6: v6, path: Forwarded, in: s.LAN, out: u.Link,
			routed: Addrs(hosts, internet(v6, s.LANPrefixes), ephemeral, anyPort, 0)}
		status := uint32(0)
		if !v6 {
			c.post = Addrs(u.addr(false), internet(false, s.LANPrefixes), ephemeral, anyPort, StatusSNAT)
			status = StatusSNAT
		}
		in.Packets = append(in.Packets, c.tcpUDP(status)...)
		in.Packets = append(in.Packets, c.echo(status)...)
		in.Packets = append(in.Packets, c.tooBig(status))
	}
	return in
}

// forward is a port forward through an uplink, and its replies: DNAT of
// the uplink's address to the LAN host for IPv4, routed for IPv6.
func forward(s Site, u Uplink, f Forward) Intent {
	v6 := f.To.Addr().Is6()
	in := Intent{ID: fmt.Sprintf("forward-%s-%d-%s", f.Proto, f.Port, u.Name), Kind: KindPortForward,
		In: u.Link, Out: s.LAN, Proto: f.Proto, Port: f.Port, To: f.To, From: f.From,
		What: fmt.Sprintf("port forward of %s port %d on %s to %s, and its replies", f.Proto, f.Port, u.Link, f.To)}
	if v6 {
		in.Kind, in.ID = KindForward6, fmt.Sprintf("forward-%s-%d-%s-v6", f.Proto, f.Port, u.Name)
		in.What = fmt.Sprintf("IPv6 forward of %s port %d from %s to %s, and its replies", f.Proto, f.Port, u.Link, f.To.Addr())
	}
	if (v6 && !u.V6) || (!v6 && !u.V4) || s.LAN == "" {
		return in
	}
	from := sources(v6, f.From, s.LANPrefixes)
	if from.Empty() {
		return in
	}
	l4 := protoNumber(f.Proto)
	to := Addr(f.To.Addr())
	c := conversation{v6: v6, path: Forwarded, in: u.Link, out: s.LAN, l4: l4,
		routed: Addrs(from, to, ephemeral, Port(f.To.Port()), StatusDNAT)}
	if !v6 {
		c.pre = Addrs(from, u.addr(false), ephemeral, Port(f.Port), 0)
	}
	ps := c.packets(StatusDNAT)
	if l4 == ProtoTCP {
		ps[0].TCPFlags, ps[1].TCPFlags = synFlags, ackFlags
	}
	in.Packets = ps
	return in
}

// open is a port of the box opened on an uplink, and its replies.
func open(u Uplink, o Open) Intent {
	in := Intent{ID: fmt.Sprintf("open-%s-%d-%s", o.Proto, o.Port, u.Name), Kind: KindOpen, In: u.Link,
		Proto: o.Proto, Port: o.Port, From: o.From,
		What: fmt.Sprintf("%s port %d of the box, open on %s, and its replies", o.Proto, o.Port, u.Link)}
	for _, v6 := range u.families() {
		from := sources(v6, o.From, nil)
		if from.Empty() {
			continue
		}
		c := conversation{v6: v6, path: ToBox, in: u.Link, l4: protoNumber(o.Proto),
			routed: Addrs(from, u.addr(v6), ephemeral, Port(o.Port), 0)}
		in.Packets = append(in.Packets, c.packets(0)...)
	}
	return in
}

// management is management.allow from beyond the LAN, over an uplink.
func management(u Uplink, p netip.Prefix) Intent {
	in := Intent{ID: "allow-" + p.String() + "-" + u.Name, Kind: KindManagement, In: u.Link, From: []netip.Prefix{p},
		What: fmt.Sprintf("management access to the box from %s over %s, and its replies", p, u.Link)}
	v6 := p.Addr().Is6()
	if (v6 && !u.V6) || (!v6 && !u.V4) {
		return in
	}
	c := conversation{v6: v6, path: ToBox, in: u.Link,
		routed: Addrs(Prefix(p), u.addr(v6), ephemeral, anyPort, 0)}
	in.Packets = c.tcpUDP(0)
	return in
}

// lanIn is traffic from the LAN to the box, and its replies.
func lanIn(s Site) Intent {
	in := Intent{ID: "lan", Kind: KindLANIn, In: s.LAN,
		What: fmt.Sprintf("traffic from the LAN (%s) to the box, and its replies", s.LAN)}
	for _, v6 := range []bool{false, true} {
		hosts, ok := lanHosts(s, v6)
		if !ok {
			continue
		}
		var box []Value
		for _, a := range s.LANAddrs {
			if a.Is6() == v6 {
				box = append(box, Addr(a))
			}
		}
		if len(box) == 0 {
			continue
		}
		c := conversation{v6: v6, path: ToBox, in: s.LAN, routed: Addrs(hosts, Union(box...), ephemeral, anyPort, 0)}
		in.Packets = append(in.Packets, c.tcpUDP(0)...)
		in.Packets = append(in.Packets, c.echo(0)...)
	}
	return in
}

// own is the box's own connections out of an uplink (its DHCP renewals,
// probes, name lookups, the aggregation peer), and their replies with the
// ICMP errors about them.
func own(u Uplink) Intent {
	in := Intent{ID: "established-" + u.Name, Kind: KindOwn, Out: u.Link,
		What: fmt.Sprintf("the box's own connections out of %s (DHCP, probes, name lookups, the peer), and their replies", u.Link)}
	for _, v6 := range u.families() {
		c := conversation{v6: v6, path: FromBox, out: u.Link,
			routed: Addrs(u.addr(v6), internet(v6, nil), ephemeral, anyPort, 0)}
		in.Packets = append(in.Packets, c.tcpUDP(0)...)
		in.Packets = append(in.Packets, c.echo(0)...)
		in.Packets = append(in.Packets, c.tooBig(0))
	}
	return in
}

// ping is an echo request to the box on an uplink, and its reply.
func ping(u Uplink) Intent {
	in := Intent{ID: "icmp-echo-request-" + u.Name, Kind: KindPing, In: u.Link,
		What: fmt.Sprintf("ping to the box on %s, and its replies", u.Link)}
	for _, v6 := range u.families() {
		c := conversation{v6: v6, path: ToBox, in: u.Link, routed: Addrs(internet(v6, nil), u.addr(v6), Value{}, Value{}, 0)}
		in.Packets = append(in.Packets, c.echo(0)...)
	}
	return in
}

// nd is IPv6 neighbour discovery with the uplink's router (and router
// advertisements, when its IPv6 comes from them): untracked by
// conntrack, hop limit 255.
func nd(u Uplink) Intent {
	in := Intent{ID: "icmpv6-nd-" + u.Name, Kind: KindND, In: u.Link, Out: u.Link,
		What: fmt.Sprintf("IPv6 neighbour discovery on %s", u.Link)}
	router := Prefix(linkLocal6)
	box := Union(addrOr(u.Addr6, true), Prefix(linkLocal6))
	group := Prefix(netip.MustParsePrefix("ff02::1:ff00:0/104"))
	mk := func(path Path, t uint8, src, dst Value, multicast bool) Packet {
		p := Packet{IPv6: true, Path: path, L4: ProtoICMPv6, ICMPType: t, State: CtUntracked, HopLimit: Byte(255),
			Multicast: multicast, Routed: Addrs(src, dst, Value{}, Value{}, 0)}
		if path == ToBox {
			p.IIF = u.Link
		} else {
			p.OIF = u.Link
		}
		return p
	}
	in.Packets = []Packet{
		mk(ToBox, 135, router, group, true),  // the router asks for the box
		mk(ToBox, 136, router, box, false),   // and answers the box
		mk(FromBox, 135, box, group, true),   // the box asks for the router
		mk(FromBox, 136, box, router, false), // and answers it
	}
	if u.RA {
		in.What = fmt.Sprintf("IPv6 neighbour and router discovery on %s", u.Link)
		in.Packets = append(in.Packets, mk(ToBox, 134, router, Prefix(netip.MustParsePrefix("ff02::1/128")), true))
	}
	return in
}

// sources is where a flow may come from: the prefixes of its family, or
// the Internet when none is given.
func sources(v6 bool, from []netip.Prefix, lan []netip.Prefix) Value {
	if len(from) == 0 {
		return internet(v6, lan)
	}
	var vs []Value
	for _, p := range from {
		if p.Addr().Is6() == v6 {
			vs = append(vs, Prefix(p))
		}
	}
	if len(vs) == 0 {
		return Value{}
	}
	return Union(vs...)
}

func protoNumber(proto string) uint8 {
	if proto == "udp" {
		return ProtoUDP
	}
	return ProtoTCP
}
