package dataplane_test

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/braid-router/braid/internal/nstest"
	"github.com/braid-router/braid/internal/testlns"
	"github.com/braid-router/braid/sessions/ppp/frame"
)

// BenchmarkForward sends one packet at a time through the box's plane
// and waits for it on the far side, to show that a packet costs no
// allocation in steady state (allocs/op counts the whole process: the
// plane's goroutines and the benchmark's sockets, which allocate
// nothing). It needs root, like the tests; its speed is a lockstep
// round of system calls, not the plane's throughput (bench/ measures
// that, group 6pe).
func BenchmarkForward(b *testing.B) {
	r := newRig(b, false, false)
	nstest.Run(b, "ip", "-n", r.Box, "-6", "route", "add", "2001:db8:2::/64", "dev", boxLink)
	payload := make([]byte, 1200)

	b.Run("out", func(b *testing.B) {
		// A LAN host's UDP through the tunnel: the LNS's socket gets
		// each in a data message.
		var lan *net.UDPConn
		nstest.Do(b, r.LAN, func() (err error) {
			lan, err = net.DialUDP("udp6", nil, net.UDPAddrFromAddrPort(netip.MustParseAddrPort("["+testlns.ServerTunnel+"]:9")))
			return err
		})
		defer lan.Close()
		buf := make([]byte, 2048)
		want := 6 + 4 + 40 + 8 + len(payload)
		round := func() {
			if _, err := lan.Write(payload); err != nil {
				b.Fatal(err)
			}
			for {
				r.lnsConn.SetReadDeadline(time.Now().Add(10 * time.Second))
				n, err := r.lnsConn.Read(buf)
				if err != nil {
					b.Fatal(err)
				}
				if n == want { // not the kernel's own MLD report
					return
				}
			}
		}
		for range 200 {
			round()
		}
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			round()
		}
	})

	b.Run("in", func(b *testing.B) {
		// UDP from the server in data messages from the LNS: the LAN
		// host gets each.
		var lan *net.UDPConn
		nstest.Do(b, r.LAN, func() (err error) {
			lan, err = net.ListenUDP("udp6", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("["+testlns.LANHost+"]:9999")))
			return err
		})
		defer lan.Close()
		box := r.conn.LocalAddr().(*net.UDPAddr).AddrPort()
		src, dst := netip.MustParseAddr(testlns.ServerTunnel), netip.MustParseAddr(testlns.LANHost)
		d := binary.BigEndian.AppendUint16(nil, 0x0002)
		d = binary.BigEndian.AppendUint16(d, boxTunnel)
		d = binary.BigEndian.AppendUint16(d, boxSession)
		d = frame.Append(d, frame.ProtoIPv6, udp6(src, dst, 9, 9999, payload))
		buf := make([]byte, 2048)
		round := func() {
			if _, err := r.lnsConn.WriteToUDPAddrPort(d, box); err != nil {
				b.Fatal(err)
			}
			lan.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := lan.Read(buf); err != nil {
				b.Fatal(err)
			}
		}
		for range 200 {
			round()
		}
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			round()
		}
	})
}

// udp6 is an IPv6 packet carrying a UDP datagram, checksum and all.
func udp6(src, dst netip.Addr, sport, dport uint16, payload []byte) []byte {
	l := 8 + len(payload)
	p := []byte{0x60, 0, 0, 0, byte(l >> 8), byte(l), 17, 64}
	p = append(p, src.AsSlice()...)
	p = append(p, dst.AsSlice()...)
	p = binary.BigEndian.AppendUint16(p, sport)
	p = binary.BigEndian.AppendUint16(p, dport)
	p = binary.BigEndian.AppendUint16(p, uint16(l))
	p = append(p, 0, 0)
	p = append(p, payload...)
	// RFC 8200 8.1: the pseudo-header is the addresses, the length and
	// the next header.
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(p[8:40])
	sum += uint32(l) + 17
	add(p[40:])
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	c := ^uint16(sum)
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(p[46:], c)
	return p
}
