package main

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/braid-router/braid/lab"
)

// icmpError is an ICMPv4 error as a router sends it: type, code, and the
// quoted IPv4 header and first 8 bytes of a UDP datagram from src to dst
// (RFC 792), with a next-hop MTU for fragmentation needed (RFC 1191).
func icmpError(typ, code byte, mtu uint16, src, dst netip.Addr) []byte {
	inner := make([]byte, 28)
	inner[0] = 0x45
	binary.BigEndian.PutUint16(inner[2:], 1400)
	inner[8], inner[9] = 64, 17 // TTL, UDP
	copy(inner[12:16], src.AsSlice())
	copy(inner[16:20], dst.AsSlice())
	binary.BigEndian.PutUint16(inner[10:], checksum(inner[:20]))
	binary.BigEndian.PutUint16(inner[20:], 40000)
	binary.BigEndian.PutUint16(inner[22:], lab.WhoamiPort)
	binary.BigEndian.PutUint16(inner[24:], 1380)
	b := append([]byte{typ, code, 0, 0, 0, 0, 0, 0}, inner...)
	binary.BigEndian.PutUint16(b[6:], mtu)
	binary.BigEndian.PutUint16(b[2:], checksum(b))
	return b
}

// checksum is the Internet checksum (RFC 1071).
func checksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

// TestICMPv4ErrorsForUnseenFlows: ICMPv4 errors about flows conntrack has
// never seen (a flow that left by another uplink, or before a failover)
// are "invalid" to conntrack; braid's firewall accepts them before its
// invalid verdict, both to the box (input) and across it (forward), as it
// does ICMPv6 errors.
func TestICMPv4ErrorsForUnseenFlows(t *testing.T) {
	b := newLabBox(t)
	b.braidOK("apply", "-f", "../../specs/lab.yaml")
	// isp1 routes the LAN's private prefix to the box, so that it can send
	// the LAN an error (no ISP routes it in the lab otherwise).
	b.run(lab.RoleISP1, "ip", "route", "add", lab.LANPrefixV4, "via", lab.BoxWAN1V4)
	server := netip.MustParseAddr(lab.ServerV4)
	for _, c := range []struct {
		name      string
		to        lab.Role
		dst       netip.Addr
		typ, code byte
		mtu       uint16
		chain     string
	}{
		{"fragmentation needed to the box", lab.RoleBox, netip.MustParseAddr(lab.BoxWAN1V4), 3, 4, 1280, "input"},
		{"time exceeded to the box", lab.RoleBox, netip.MustParseAddr(lab.BoxWAN1V4), 11, 0, 0, "input"},
		{"port unreachable to the box", lab.RoleBox, netip.MustParseAddr(lab.BoxWAN1V4), 3, 3, 0, "input"},
		{"fragmentation needed to a LAN host", lab.RoleLAN, netip.MustParseAddr(lab.LANClientV4), 3, 4, 1280, "forward"},
		{"time exceeded to a LAN host", lab.RoleLAN, netip.MustParseAddr(lab.LANClientV4), 11, 0, 0, "forward"},
		{"host unreachable to a LAN host", lab.RoleLAN, netip.MustParseAddr(lab.LANClientV4), 3, 1, 0, "forward"},
	} {
		t.Run(c.name, func(t *testing.T) {
			msg := icmpError(c.typ, c.code, c.mtu, c.dst, server)
			var rc *ipv4.RawConn
			// The receiver: a raw ICMP socket in the destination's
			// namespace that sees only this error type.
			if err := b.l.Do(c.to, func() error {
				pc, err := net.ListenPacket("ip4:icmp", "0.0.0.0")
				if err != nil {
					return err
				}
				rc, err = ipv4.NewRawConn(pc)
				if err != nil {
					pc.Close()
					return err
				}
				var f ipv4.ICMPFilter
				f.SetAll(true)
				f.Accept(ipv4.ICMPType(c.typ))
				return rc.SetICMPFilter(&f)
			}); err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			// The sender, isp1, repeats the error until it arrives or
			// the deadline passes (a lost packet is no verdict).
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			to := &net.IPAddr{IP: c.dst.AsSlice()}
			go func() {
				_ = b.l.Do(lab.RoleISP1, func() error {
					pc, err := net.ListenPacket("ip4:icmp", lab.ISP1GatewayV4)
					if err != nil {
						return err
					}
					defer pc.Close()
					for ctx.Err() == nil {
						pc.WriteTo(msg, to)
						select {
						case <-ctx.Done():
						case <-time.After(200 * time.Millisecond):
						}
					}
					return nil
				})
			}()
			buf := make([]byte, 1500)
			rc.SetReadDeadline(time.Now().Add(15 * time.Second))
			for {
				_, p, _, err := rc.ReadFrom(buf)
				if errors.Is(err, os.ErrDeadlineExceeded) {
					t.Fatalf("%s: the %s chain dropped an ICMP type %d code %d for a flow conntrack has not seen\n%s",
						c.name, c.chain, c.typ, c.code, b.run(lab.RoleBox, "nft", "list", "chain", "inet", "braid", c.chain))
				}
				if err != nil {
					t.Fatal(err)
				}
				if len(p) >= 2 && p[0] == c.typ && p[1] == c.code {
					return
				}
			}
		})
	}
}
