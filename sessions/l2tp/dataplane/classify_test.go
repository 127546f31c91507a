package dataplane

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/braid-router/braid/sessions/l2tp/avp"
	"github.com/braid-router/braid/sessions/ppp/frame"
)

// ipv6Packet is an IPv6 header announcing payload octets, and payload.
func ipv6Packet(payload []byte) []byte {
	p := make([]byte, 40, 40+len(payload))
	p[0] = 0x60
	binary.BigEndian.PutUint16(p[4:], uint16(len(payload)))
	return append(p, payload...)
}

func TestClassify(t *testing.T) {
	pkt := ipv6Packet([]byte("hello"))
	data := func(tunnel, session uint16, seq bool, f []byte) []byte {
		return avp.AppendData(nil, tunnel, session, seq, 5, f)
	}
	ppp := func(proto uint16, info []byte) []byte { return frame.Append(nil, proto, info) }
	withLength := avp.AppendHeader(nil, avp.Header{HasLength: true, TunnelID: 3, SessionID: 4}, len(ppp(frame.ProtoIPv6, pkt)))
	withLength = append(append(withLength, ppp(frame.ProtoIPv6, pkt)...), "trailer"...)
	for _, c := range []struct {
		name string
		d    []byte
		want verdict
		pkt  []byte
	}{
		{"IPv6 of the session", data(3, 4, false, ppp(frame.ProtoIPv6, pkt)), verdictIPv6, pkt},
		{"sequenced", data(3, 4, true, ppp(frame.ProtoIPv6, pkt)), verdictIPv6, pkt},
		// RFC 1661 6.5 and 6.6: compressed fields are accepted.
		{"compressed protocol, no address and control", append(append([]byte{}, data(3, 4, false, nil)...), append([]byte{0x57}, pkt...)...), verdictIPv6, pkt},
		// The Length field ends the message; what follows is ignored.
		{"L bit and a trailer", withLength, verdictIPv6, pkt},
		// Padding after the IPv6 packet is trimmed.
		{"padded", data(3, 4, false, ppp(frame.ProtoIPv6, append(bytes.Clone(pkt), 0, 0, 0))), verdictIPv6, pkt},
		{"LCP", data(3, 4, false, ppp(frame.ProtoLCP, []byte{9, 1, 0, 8, 0, 0, 0, 0})), verdictOther, nil},
		{"another session", data(3, 5, false, ppp(frame.ProtoIPv6, pkt)), verdictOther, nil},
		{"another tunnel", data(2, 4, false, ppp(frame.ProtoIPv6, pkt)), verdictOther, nil},
		{"a control message", avp.AppendHeader(nil, avp.Header{Control: true, HasLength: true, Sequenced: true, TunnelID: 3}, 0), verdictOther, nil},
		{"L2TPv3", []byte{0x00, 0x03, 0, 3, 0, 4}, verdictOther, nil},
		{"empty", nil, verdictOther, nil},
		{"IPv4 inside an IPv6 frame", data(3, 4, false, ppp(frame.ProtoIPv6, append([]byte{0x45}, make([]byte, 40)...))), verdictDrop, nil},
		{"IPv6 cut short", data(3, 4, false, ppp(frame.ProtoIPv6, pkt[:len(pkt)-1])), verdictDrop, nil},
		{"shorter than an IPv6 header", data(3, 4, false, ppp(frame.ProtoIPv6, pkt[:39])), verdictDrop, nil},
	} {
		got, v := classify(c.d, 3, 4)
		if v != c.want || !bytes.Equal(got, c.pkt) {
			t.Errorf("%s: classify = % x, %d; want % x, %d", c.name, got, v, c.pkt, c.want)
		}
	}
}

// FuzzClassify: any datagram from the network is classified without
// panicking, and an IPv6 verdict is a whole IPv6 packet inside it.
func FuzzClassify(f *testing.F) {
	f.Add(avp.AppendData(nil, 3, 4, false, 0, frame.Append(nil, frame.ProtoIPv6, ipv6Packet([]byte("x")))))
	f.Add(avp.AppendData(nil, 3, 4, true, 9, frame.Append(nil, frame.ProtoLCP, []byte{9, 1, 0, 4})))
	f.Add([]byte{0xc8, 0x02, 0, 12, 0, 3, 0, 0, 0, 1, 0, 1})
	f.Fuzz(func(t *testing.T, d []byte) {
		pkt, v := classify(d, 3, 4)
		if v != verdictIPv6 {
			if pkt != nil {
				t.Fatalf("verdict %d with a packet", v)
			}
			return
		}
		if len(pkt) < 40 || pkt[0]>>4 != 6 || len(pkt) != 40+int(binary.BigEndian.Uint16(pkt[4:])) {
			t.Fatalf("not a whole IPv6 packet: % x", pkt)
		}
		if !bytes.Contains(d, pkt) {
			t.Fatal("the packet is not from the datagram")
		}
	})
}
