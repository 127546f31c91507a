package dhcp4

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"golang.org/x/net/bpf"
)

// A framed datagram reads back, and its checksums verify: the IPv4
// header's and UDP's (over the pseudo-header) both sum to all ones.
func TestFrame(t *testing.T) {
	src, dst := netip.MustParseAddr("0.0.0.0"), netip.MustParseAddr("255.255.255.255")
	for _, payload := range [][]byte{[]byte("odd"), bytes.Repeat([]byte{0xab}, 300)} {
		pkt := frame(payload, src, dst)
		if got := checksum(0, pkt[:ipv4HeaderLen]); got != 0xffff {
			t.Errorf("IPv4 header checksum sums to %#x", got)
		}
		udp := pkt[ipv4HeaderLen:]
		sum := uint32(checksum(0, pkt[12:20]))
		sum = uint32(checksum(sum, []byte{0, protoUDP, udp[4], udp[5]}))
		if got := checksum(sum, udp); got != 0xffff {
			t.Errorf("UDP checksum sums to %#x", got)
		}
		// The server answers to port 68: turn the ports around.
		binary.BigEndian.PutUint16(udp[0:], serverPort)
		binary.BigEndian.PutUint16(udp[2:], clientPort)
		got, from, ok := unframe(pkt)
		if !ok || !bytes.Equal(got, payload) || from != netip.AddrPortFrom(src, serverPort) {
			t.Errorf("unframe: %v %q %s", ok, got, from)
		}
	}
}

// unframe takes IPv4 UDP to port 68 whole, and nothing else.
func TestUnframeRefuses(t *testing.T) {
	good := func() []byte {
		pkt := frame([]byte("dhcp"), netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"))
		binary.BigEndian.PutUint16(pkt[ipv4HeaderLen+2:], clientPort)
		return pkt
	}
	tests := map[string]func([]byte) []byte{
		"short":          func(b []byte) []byte { return b[:10] },
		"IPv6":           func(b []byte) []byte { b[0] = 0x65; return b },
		"TCP":            func(b []byte) []byte { b[9] = 6; return b },
		"fragment":       func(b []byte) []byte { b[6] |= 0x20; return b },
		"port 67":        func(b []byte) []byte { b[ipv4HeaderLen+3] = 67; return b },
		"total too long": func(b []byte) []byte { binary.BigEndian.PutUint16(b[2:], 9999); return b },
		"UDP too long":   func(b []byte) []byte { binary.BigEndian.PutUint16(b[ipv4HeaderLen+4:], 999); return b },
		"IHL too short":  func(b []byte) []byte { b[0] = 0x44; return b },
	}
	if _, _, ok := unframe(good()); !ok {
		t.Fatal("the good packet is refused")
	}
	for name, spoil := range tests {
		if _, _, ok := unframe(spoil(good())); ok {
			t.Errorf("%s: accepted", name)
		}
	}
}

// The kernel filter accepts exactly what unframe accepts, bar the
// lengths it does not check.
func TestReplyFilter(t *testing.T) {
	vm, err := bpf.NewVM(mustDisassemble(t, replyFilter()))
	if err != nil {
		t.Fatal(err)
	}
	pkt := frame([]byte("dhcp"), netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"))
	if n, _ := vm.Run(pkt); n != 0 {
		t.Errorf("the filter accepts a datagram to port 67")
	}
	binary.BigEndian.PutUint16(pkt[ipv4HeaderLen+2:], clientPort)
	if n, _ := vm.Run(pkt); n == 0 {
		t.Errorf("the filter refuses a datagram to port 68")
	}
	frag := bytes.Clone(pkt)
	frag[7] = 1
	if n, _ := vm.Run(frag); n != 0 {
		t.Errorf("the filter accepts a fragment")
	}
	tcp := bytes.Clone(pkt)
	tcp[9] = 6
	if n, _ := vm.Run(tcp); n != 0 {
		t.Errorf("the filter accepts TCP")
	}
	opts := append(append([]byte{0x46}, pkt[1:ipv4HeaderLen]...), append([]byte{1, 1, 1, 1}, pkt[ipv4HeaderLen:]...)...)
	if n, _ := vm.Run(opts); n == 0 {
		t.Errorf("the filter refuses a header with options")
	}
}

func mustDisassemble(t *testing.T, raw []bpf.RawInstruction) []bpf.Instruction {
	t.Helper()
	ins, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatal("the filter does not disassemble")
	}
	return ins
}

// ARP packets read back, and conflicts are what RFC 5227 calls them.
func TestARP(t *testing.T) {
	self := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	other := net.HardwareAddr{2, 0, 0, 0, 0, 2}
	addr := netip.MustParseAddr("10.101.0.2")
	zero := netip.IPv4Unspecified()
	tests := []struct {
		name string
		p    arpPacket
		want bool
	}{
		{"a reply from the address", arpPacket{op: arpReply, sha: other, spa: addr, tha: self, tpa: zero}, true},
		{"an announcement", arpPacket{op: arpRequest, sha: other, spa: addr, tha: make(net.HardwareAddr, 6), tpa: addr}, true},
		{"another's probe", arpPacket{op: arpRequest, sha: other, spa: zero, tha: make(net.HardwareAddr, 6), tpa: addr}, true},
		{"our own probe", arpPacket{op: arpRequest, sha: self, spa: zero, tha: make(net.HardwareAddr, 6), tpa: addr}, false},
		{"another address", arpPacket{op: arpReply, sha: other, spa: netip.MustParseAddr("10.101.0.1"), tha: self, tpa: zero}, false},
		{"a question about it", arpPacket{op: arpRequest, sha: other, spa: netip.MustParseAddr("10.101.0.1"), tha: make(net.HardwareAddr, 6), tpa: addr}, false},
	}
	for _, tt := range tests {
		p, ok := parseARP(tt.p.marshal())
		if !ok || p.op != tt.p.op || !bytes.Equal(p.sha, tt.p.sha) || p.spa != tt.p.spa || p.tpa != tt.p.tpa {
			t.Errorf("%s: reads back as %+v", tt.name, p)
		}
		if got := p.conflicts(addr, self); got != tt.want {
			t.Errorf("%s: conflict %v, want %v", tt.name, got, tt.want)
		}
	}
	if _, ok := parseARP(make([]byte, 27)); ok {
		t.Errorf("a short packet parses")
	}
}
