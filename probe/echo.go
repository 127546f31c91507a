package probe

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
)

// ICMP message types of an echo (RFC 792, RFC 4443).
const (
	icmpEchoRequest   = 8
	icmpEchoReply     = 0
	icmpv6EchoRequest = 128
	icmpv6EchoReply   = 129
)

// echoDataLen is how many random bytes an echo request carries and its
// reply must bring back.
const echoDataLen = 16

// echoHeaderLen is an echo message's type, code, checksum, identifier
// and sequence number.
const echoHeaderLen = 8

// echo is one echo request: what it carries, and so what its reply must.
type echo struct {
	v6   bool
	id   uint16
	seq  uint16
	data [echoDataLen]byte
}

// newEcho returns an echo request with a random identifier, sequence
// number and data, so that concurrent probes, in this process or in
// another, never take each other's replies.
func newEcho(v6 bool) *echo {
	e := &echo{v6: v6, id: uint16(rand.Uint32()), seq: uint16(rand.Uint32())}
	binary.BigEndian.PutUint64(e.data[:8], rand.Uint64())
	binary.BigEndian.PutUint64(e.data[8:], rand.Uint64())
	return e
}

// request returns the echo request message. An ICMPv6 message's checksum
// is left zero: it covers a pseudo-header with the source address, which
// only the kernel knows when the socket is not bound, and the kernel
// computes it for every raw ICMPv6 socket (RFC 3542, section 3.1).
func (e *echo) request() []byte {
	b := make([]byte, echoHeaderLen+echoDataLen)
	b[0] = icmpEchoRequest
	if e.v6 {
		b[0] = icmpv6EchoRequest
	}
	binary.BigEndian.PutUint16(b[4:], e.id)
	binary.BigEndian.PutUint16(b[6:], e.seq)
	copy(b[echoHeaderLen:], e.data[:])
	if !e.v6 {
		binary.BigEndian.PutUint16(b[2:], ^checksum(b))
	}
	return b
}

// isReply reports whether b, an ICMP or ICMPv6 message as a raw socket
// delivers it (without the IP header), is the reply to e: an echo reply,
// code 0, with e's identifier, sequence number and data, and, for ICMP, a
// correct checksum (the kernel checks ICMPv6 checksums on raw sockets, but
// hands ICMP to raw sockets before it checks anything).
func (e *echo) isReply(b []byte) bool {
	m, ok := parseEcho(b)
	if !ok || m.code != 0 || m.id != e.id || m.seq != e.seq || !bytes.Equal(m.data, e.data[:]) {
		return false
	}
	if e.v6 {
		return m.typ == icmpv6EchoReply
	}
	return m.typ == icmpEchoReply && checksum(b) == 0xffff
}

// echoMessage is a parsed echo request or reply.
type echoMessage struct {
	typ, code uint8
	id, seq   uint16
	// data aliases the parsed bytes.
	data []byte
}

// parseEcho parses an echo message's fields; ok is false when b is too
// short to be one. It does not look at the type: every ICMP message is at
// least eight bytes, and the type decides what the last four mean.
func parseEcho(b []byte) (m echoMessage, ok bool) {
	if len(b) < echoHeaderLen {
		return echoMessage{}, false
	}
	return echoMessage{
		typ:  b[0],
		code: b[1],
		id:   binary.BigEndian.Uint16(b[4:]),
		seq:  binary.BigEndian.Uint16(b[6:]),
		data: b[echoHeaderLen:],
	}, true
}

// checksum is the ones' complement sum of b in 16-bit words (RFC 1071),
// not complemented: a message with a correct checksum sums to 0xffff.
func checksum(b []byte) uint16 {
	var sum uint32
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
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
