package probe

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// testEcho is an echo request with fixed fields.
func testEcho(v6 bool) *echo {
	e := &echo{v6: v6, id: 0x1234, seq: 0xbeef}
	copy(e.data[:], "0123456789abcdef")
	return e
}

func TestEchoRequest(t *testing.T) {
	// An ICMP echo request: type 8, code 0, its checksum, id, seq, data.
	want4 := append([]byte{8, 0, 0, 0, 0x12, 0x34, 0xbe, 0xef}, "0123456789abcdef"...)
	binary.BigEndian.PutUint16(want4[2:], 0xf7a4) // computed independently
	if got := testEcho(false).request(); !bytes.Equal(got, want4) {
		t.Errorf("ICMP request\n got % x\nwant % x", got, want4)
	}
	if sum := checksum(want4); sum != 0xffff {
		t.Errorf("the ICMP request sums to %#04x, want 0xffff", sum)
	}
	// ICMPv6: type 128, the checksum left to the kernel.
	want6 := append([]byte{128, 0, 0, 0, 0x12, 0x34, 0xbe, 0xef}, "0123456789abcdef"...)
	if got := testEcho(true).request(); !bytes.Equal(got, want6) {
		t.Errorf("ICMPv6 request\n got % x\nwant % x", got, want6)
	}
}

// reply returns the reply a host would send to e's request, changed by
// edit before the checksum is computed.
func reply(e *echo, edit func(b []byte)) []byte {
	b := e.request()
	b[0] = icmpEchoReply
	if e.v6 {
		b[0] = icmpv6EchoReply
	}
	b[2], b[3] = 0, 0
	if edit != nil {
		edit(b)
	}
	if !e.v6 {
		binary.BigEndian.PutUint16(b[2:], ^checksum(b))
	}
	return b
}

func TestEchoIsReply(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		e := testEcho(v6)
		replyType, requestType := byte(icmpEchoReply), byte(icmpEchoRequest)
		if v6 {
			replyType, requestType = icmpv6EchoReply, icmpv6EchoRequest
		}
		cases := []struct {
			name string
			b    []byte
			want bool
		}{
			{"the reply", reply(e, nil), true},
			{"the request itself", e.request(), false},
			{"another type", reply(e, func(b []byte) { b[0] = requestType }), false},
			{"the other family's reply type", reply(e, func(b []byte) { b[0] = icmpEchoReply + icmpv6EchoReply - replyType }), false},
			{"code 1", reply(e, func(b []byte) { b[1] = 1 }), false},
			{"another id", reply(e, func(b []byte) { b[5]++ }), false},
			{"another sequence", reply(e, func(b []byte) { b[7]++ }), false},
			{"other data", reply(e, func(b []byte) { b[len(b)-1] ^= 1 }), false},
			{"data cut short", reply(e, nil)[:len(reply(e, nil))-1], false},
			{"more data", append(reply(e, nil), 0, 0), false},
			{"no data", reply(e, nil)[:echoHeaderLen], false},
			{"shorter than a header", reply(e, nil)[:7], false},
			{"empty", nil, false},
		}
		if !v6 {
			bad := reply(e, nil)
			bad[2] ^= 0xff
			cases = append(cases, struct {
				name string
				b    []byte
				want bool
			}{"a wrong checksum", bad, false})
		}
		for _, c := range cases {
			if got := e.isReply(c.b); got != c.want {
				t.Errorf("v6=%v %s: isReply = %v, want %v (% x)", v6, c.name, got, c.want, c.b)
			}
		}
	}
}

func TestNewEchoIsRandom(t *testing.T) {
	// Two probes share an identifier, a sequence number and data with a
	// chance of one in 2^160; a hundred probes with identical fields
	// would be a broken generator.
	seen := map[echo]bool{}
	ids := map[uint16]bool{}
	for range 100 {
		e := newEcho(false)
		if seen[*e] {
			t.Fatalf("newEcho repeated %+v", *e)
		}
		seen[*e] = true
		ids[e.id] = true
	}
	if len(ids) < 50 {
		t.Errorf("100 probes used only %d identifiers", len(ids))
	}
}

func TestChecksum(t *testing.T) {
	// RFC 1071, section 3's example: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
	if got := checksum([]byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}); got != 0xddf2 {
		t.Errorf("checksum = %#04x, want 0xddf2", got)
	}
	// An odd length is padded with a zero byte.
	if got := checksum([]byte{0x01, 0x02, 0x03}); got != 0x0402 {
		t.Errorf("odd length: checksum = %#04x, want 0x0402", got)
	}
}
