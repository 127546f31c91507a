package dhcp4

import (
	"encoding/binary"
	"net/netip"

	"golang.org/x/net/bpf"
)

// DHCP's UDP ports.
const (
	serverPort = 67
	clientPort = 68
)

// IPv4 and UDP header sizes and fields braid writes and reads.
const (
	ipv4HeaderLen = 20
	udpHeaderLen  = 8
	protoUDP      = 17
	ipv4TTL       = 64
	flagDF        = 0x4000
	fragMask      = 0x3fff // MF flag and fragment offset
)

// frame wraps a DHCP message in the IPv4 and UDP headers of a datagram
// from src:68 to dst:67, checksums computed: what a raw socket sends
// before the kernel may use the client's address.
func frame(payload []byte, src, dst netip.Addr) []byte {
	total := ipv4HeaderLen + udpHeaderLen + len(payload)
	b := make([]byte, total)
	ip := b[:ipv4HeaderLen]
	ip[0] = 0x45 // version 4, 5 words
	binary.BigEndian.PutUint16(ip[2:], uint16(total))
	binary.BigEndian.PutUint16(ip[6:], flagDF)
	ip[8] = ipv4TTL
	ip[9] = protoUDP
	s, d := src.As4(), dst.As4()
	copy(ip[12:16], s[:])
	copy(ip[16:20], d[:])
	binary.BigEndian.PutUint16(ip[10:], ^checksum(0, ip))

	udp := b[ipv4HeaderLen:]
	binary.BigEndian.PutUint16(udp[0:], clientPort)
	binary.BigEndian.PutUint16(udp[2:], serverPort)
	binary.BigEndian.PutUint16(udp[4:], uint16(udpHeaderLen+len(payload)))
	copy(udp[udpHeaderLen:], payload)
	// The pseudo-header: addresses, protocol, UDP length.
	sum := uint32(checksum(0, ip[12:20]))
	sum = uint32(checksum(sum, []byte{0, protoUDP, udp[4], udp[5]}))
	c := ^checksum(sum, udp)
	if c == 0 {
		c = 0xffff // RFC 768: a computed zero is sent as all ones
	}
	binary.BigEndian.PutUint16(udp[6:], c)
	return b
}

// checksum adds b to the ones' complement sum sum (RFC 1071), folded.
func checksum(sum uint32, b []byte) uint16 {
	for len(b) >= 2 {
		sum += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return uint16(sum)
}

// unframe returns the UDP payload of an IPv4 datagram to port 68, and its
// source, or false for anything else: another protocol or port, a
// fragment, a header whose lengths do not fit the packet. Checksums are
// not checked: a packet socket sees datagrams before the kernel has
// filled in checksums it offloads, and the DHCP message's own decoding
// is the check that matters.
func unframe(pkt []byte) ([]byte, netip.AddrPort, bool) {
	if len(pkt) < ipv4HeaderLen || pkt[0]>>4 != 4 {
		return nil, netip.AddrPort{}, false
	}
	ihl := int(pkt[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(pkt[2:]))
	if ihl < ipv4HeaderLen || total < ihl+udpHeaderLen || total > len(pkt) ||
		pkt[9] != protoUDP || binary.BigEndian.Uint16(pkt[6:])&fragMask != 0 {
		return nil, netip.AddrPort{}, false
	}
	udp := pkt[ihl:total]
	ulen := int(binary.BigEndian.Uint16(udp[4:]))
	if binary.BigEndian.Uint16(udp[2:]) != clientPort || ulen < udpHeaderLen || ulen > len(udp) {
		return nil, netip.AddrPort{}, false
	}
	src := netip.AddrPortFrom(netip.AddrFrom4([4]byte(pkt[12:16])), binary.BigEndian.Uint16(udp[0:]))
	return udp[udpHeaderLen:ulen], src, true
}

// replyFilter is the packet socket's filter: IPv4 UDP to port 68 that is
// not a fragment, so that the client reads DHCP and nothing of the
// uplink's other traffic. It sees the packet from its IPv4 header (a
// SOCK_DGRAM packet socket).
func replyFilter() []bpf.RawInstruction {
	prog, err := bpf.Assemble([]bpf.Instruction{
		bpf.LoadAbsolute{Off: 9, Size: 1}, // protocol
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: protoUDP, SkipTrue: 6},
		bpf.LoadAbsolute{Off: 6, Size: 2}, // flags, fragment offset
		bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: fragMask, SkipTrue: 4},
		bpf.LoadMemShift{Off: 0},          // X = IHL * 4
		bpf.LoadIndirect{Off: 2, Size: 2}, // UDP destination port
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: clientPort, SkipFalse: 1},
		bpf.RetConstant{Val: 0xffff},
		bpf.RetConstant{Val: 0},
	})
	if err != nil {
		panic("dhcp4: the reply filter does not assemble: " + err.Error())
	}
	return prog
}
