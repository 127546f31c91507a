package foreignfw

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
)

// Path is the hooks a packet crosses, in order.
type Path int

// Paths.
const (
	// Forwarded: prerouting, forward, postrouting.
	Forwarded Path = iota
	// ToBox: prerouting, input.
	ToBox
	// FromBox: output, postrouting.
	FromBox
)

// hooks lists the hooks of a path.
func (p Path) hooks() []string {
	switch p {
	case ToBox:
		return []string{HookPrerouting, HookInput}
	case FromBox:
		return []string{HookOutput, HookPostrouting}
	}
	return []string{HookPrerouting, HookForward, HookPostrouting}
}

// Conntrack states, as nft's ct state bits.
const (
	CtInvalid     uint32 = 1
	CtEstablished uint32 = 2
	CtRelated     uint32 = 4
	CtNew         uint32 = 8
	// CtUntracked: neighbour discovery and MLD, which conntrack leaves
	// alone.
	CtUntracked uint32 = 64
)

// Conntrack status bits (nft's ct status).
const (
	StatusSeenReply uint32 = 2
	StatusAssured   uint32 = 4
	StatusConfirmed uint32 = 8
	StatusSNAT      uint32 = 16
	StatusDNAT      uint32 = 32
)

// Layer 4 protocols.
const (
	ProtoICMP   uint8 = 1
	ProtoTCP    uint8 = 6
	ProtoUDP    uint8 = 17
	ProtoICMPv6 uint8 = 58
)

// Packet is one kind of packet a flow braid lets through sends: what
// every nftables expression can load of it, at each hook on its path.
// Fields that stand for many packets (any LAN host, any client port)
// are ranges; what braid does not know is Top.
type Packet struct {
	// IPv6 selects the family; else IPv4.
	IPv6 bool
	Path Path
	// IIF and OIF name the interfaces it comes in and goes out of ("" for
	// none: a packet from the box has no IIF, one to the box no OIF).
	IIF, OIF string
	// L4 is its layer 4 protocol.
	L4 uint8
	// State is its conntrack state (one of the Ct bits); Reply says it
	// goes in the reply direction.
	State uint32
	Reply bool
	// Pre is its addresses, ports and conntrack status as it arrives
	// (before destination NAT), Routed as it is routed (forward, input,
	// output, and the hooks' chains between the two NATs), Post as it
	// leaves (after source NAT). A stage left zero is Routed.
	Pre, Routed, Post Header
	// ICMP type and code, for ICMP and ICMPv6.
	ICMPType, ICMPCode uint8
	// TCPFlags is the flags byte of a TCP packet (one byte).
	TCPFlags Value
	// HopLimit is its TTL or hop limit (one byte).
	HopLimit Value
	// Multicast marks a packet to a multicast group (neighbour
	// solicitations, router advertisements): its destination's route type
	// is multicast, not local or unicast.
	Multicast bool

	// iifIndex and oifIndex are the interfaces' indexes, when known.
	iifIndex, oifIndex uint32
}

// Header is what changes of a packet across NAT: its addresses and
// ports, and its conntrack status.
type Header struct {
	Src, Dst     Value
	Sport, Dport Value
	Status       uint32
	// set tells a header that was given from one left zero.
	set bool
}

// Addrs builds a Header.
func Addrs(src, dst Value, sport, dport Value, status uint32) Header {
	return Header{Src: src, Dst: dst, Sport: sport, Dport: dport, Status: status, set: true}
}

// Family names the packet's family.
func (p *Packet) Family() Family {
	if p.IPv6 {
		return FamilyIPv6
	}
	return FamilyIPv4
}

// header is the packet's header at a hook, for a chain of that priority.
// At the NAT priorities themselves (dstnat -100, srcnat 100) the order of
// two chains is the kernel's business: braid takes the side that does
// not assume the NAT happened.
func (p *Packet) header(hook string, prio int) Header {
	h := p.Routed
	switch {
	case hook == HookPrerouting && prio <= -100 && p.Pre.set:
		h = p.Pre
	case hook == HookPostrouting && prio > 100 && p.Post.set:
		h = p.Post
	}
	return h
}

// preLocal reports whether a forwarded packet is still to the box's own
// address at a hook: before destination NAT (a port forward's first
// packet, a reply to a masqueraded connection).
func (p *Packet) preLocal(hook string, prio int) bool {
	return p.Path == Forwarded && p.Pre.set && hook == HookPrerouting && prio <= -100
}

// String describes the packet for a person: "IPv4 TCP new lan0 -> wan1".
func (p *Packet) String() string {
	var b strings.Builder
	b.WriteString(map[bool]string{false: "IPv4", true: "IPv6"}[p.IPv6])
	b.WriteByte(' ')
	switch p.L4 {
	case ProtoTCP:
		b.WriteString("TCP")
	case ProtoUDP:
		b.WriteString("UDP")
	case ProtoICMP, ProtoICMPv6:
		b.WriteString(icmpName(p.IPv6, p.ICMPType))
	default:
		fmt.Fprintf(&b, "protocol %d", p.L4)
	}
	if p.L4 == ProtoTCP || p.L4 == ProtoUDP {
		if port, ok := p.Routed.Dport.point(); ok {
			fmt.Fprintf(&b, " port %d", binary.BigEndian.Uint16(port))
		} else if port, ok := p.Routed.Sport.point(); ok && p.Reply {
			fmt.Fprintf(&b, " from port %d", binary.BigEndian.Uint16(port))
		}
	}
	switch p.State {
	case CtNew:
		b.WriteString(", new")
	case CtEstablished:
		b.WriteString(", reply")
	case CtRelated:
		b.WriteString(", related")
	}
	iif, oif := p.IIF, p.OIF
	if iif == "" {
		iif = "the box"
	}
	if oif == "" {
		oif = "the box"
	}
	fmt.Fprintf(&b, ", %s -> %s", iif, oif)
	return b.String()
}

func icmpName(v6 bool, t uint8) string {
	names := map[uint8]string{0: "echo-reply", 3: "destination-unreachable", 8: "echo-request", 11: "time-exceeded", 12: "parameter-problem"}
	prefix := "ICMP "
	if v6 {
		prefix = "ICMPv6 "
		names = map[uint8]string{1: "destination-unreachable", 2: "packet-too-big", 3: "time-exceeded", 4: "parameter-problem",
			128: "echo-request", 129: "echo-reply", 133: "router-solicit", 134: "router-advert",
			135: "neighbour-solicit", 136: "neighbour-advert"}
	}
	if n, ok := names[t]; ok {
		return prefix + n
	}
	return fmt.Sprintf("%stype %d", prefix, t)
}

// Values of common fields.

// Addr is the value of one address.
func Addr(a netip.Addr) Value { return Point(a.AsSlice()) }

// Prefix is the value of every address of a prefix.
func Prefix(p netip.Prefix) Value {
	p = p.Masked()
	lo := p.Addr().AsSlice()
	hi := make([]byte, len(lo))
	copy(hi, lo)
	for i := p.Bits(); i < len(hi)*8; i++ {
		hi[i/8] |= 0x80 >> (i % 8)
	}
	return Between(lo, hi)
}

// Port is the value of one port.
func Port(n uint16) Value { return Point(binary.BigEndian.AppendUint16(nil, n)) }

// Ports is the value of every port from lo to hi.
func Ports(lo, hi uint16) Value {
	return Between(binary.BigEndian.AppendUint16(nil, lo), binary.BigEndian.AppendUint16(nil, hi))
}

// Byte is the value of one byte.
func Byte(b byte) Value { return Point([]byte{b}) }

// Bytes is the value of every byte from lo to hi.
func Bytes(lo, hi byte) Value { return Between([]byte{lo}, []byte{hi}) }

// Without is v less the addresses of the prefixes (of v's family).
func (v Value) Without(ps ...netip.Prefix) Value {
	for _, p := range ps {
		if p.Addr().BitLen()/8 != v.n {
			continue
		}
		pv := Prefix(p)
		v = v.Minus(pv.ranges[0].lo, pv.ranges[0].hi)
	}
	return v
}

// hostU32 encodes a 32-bit value in the byte order the kernel keeps it in
// registers (ct state, ct status, marks, interface indexes).
func hostU32(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }
