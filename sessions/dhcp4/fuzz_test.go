package dhcp4

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// FuzzUnframe reads arbitrary bytes as the packet socket delivers them:
// unframe never panics, and what it returns lies inside the packet; the
// payload then goes to dhcpv4.FromBytes, as the session reads it.
func FuzzUnframe(f *testing.F) {
	pkt := frame([]byte("dhcp"), netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"))
	pkt[ipv4HeaderLen+3] = clientPort
	f.Add(pkt)
	m, _ := dhcpv4.New(dhcpv4.WithMessageType(dhcpv4.MessageTypeAck))
	reply := frame(m.ToBytes(), netip.MustParseAddr("10.101.0.1"), netip.MustParseAddr("255.255.255.255"))
	reply[ipv4HeaderLen+3] = clientPort
	f.Add(reply)
	f.Add([]byte{0x45})
	f.Fuzz(func(t *testing.T, b []byte) {
		payload, _, ok := unframe(b)
		if !ok {
			return
		}
		if len(payload) > len(b) || !bytes.Contains(b, payload) {
			t.Fatalf("payload of %d bytes out of a packet of %d", len(payload), len(b))
		}
		dhcpv4.FromBytes(payload)
	})
}

// FuzzParseARP reads arbitrary bytes as the address check does.
func FuzzParseARP(f *testing.F) {
	f.Add(arpPacket{op: arpReply, sha: make([]byte, 6), tha: make([]byte, 6),
		spa: netip.MustParseAddr("10.0.0.1"), tpa: netip.MustParseAddr("10.0.0.2")}.marshal())
	f.Add([]byte{0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, ok := parseARP(b)
		if !ok {
			return
		}
		if back := p.marshal(); !bytes.Equal(back, b[:arpLen]) {
			t.Fatalf("%x reads as %+v, which writes as %x", b[:arpLen], p, back)
		}
		p.conflicts(netip.MustParseAddr("10.0.0.2"), nil)
	})
}
