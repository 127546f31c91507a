package dhcp4

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/mdlayher/packet"
	"golang.org/x/sys/unix"
)

// ARP operations (RFC 826).
const (
	arpRequest = 1
	arpReply   = 2
	arpLen     = 28
)

// arpPacket is an Ethernet/IPv4 ARP packet (RFC 826).
type arpPacket struct {
	op       uint16
	sha, tha net.HardwareAddr
	spa, tpa netip.Addr
}

// marshal writes p in its 28 bytes.
func (p arpPacket) marshal() []byte {
	b := make([]byte, arpLen)
	binary.BigEndian.PutUint16(b[0:], 1)             // Ethernet
	binary.BigEndian.PutUint16(b[2:], unix.ETH_P_IP) // IPv4
	b[4], b[5] = 6, 4
	binary.BigEndian.PutUint16(b[6:], p.op)
	copy(b[8:14], p.sha)
	spa, tpa := p.spa.As4(), p.tpa.As4()
	copy(b[14:18], spa[:])
	copy(b[18:24], p.tha)
	copy(b[24:28], tpa[:])
	return b
}

// parseARP reads an Ethernet/IPv4 ARP packet; false for anything else.
func parseARP(b []byte) (arpPacket, bool) {
	if len(b) < arpLen || binary.BigEndian.Uint16(b[0:]) != 1 || binary.BigEndian.Uint16(b[2:]) != unix.ETH_P_IP || b[4] != 6 || b[5] != 4 {
		return arpPacket{}, false
	}
	return arpPacket{
		op:  binary.BigEndian.Uint16(b[6:]),
		sha: net.HardwareAddr(bytes.Clone(b[8:14])),
		spa: netip.AddrFrom4([4]byte(b[14:18])),
		tha: net.HardwareAddr(bytes.Clone(b[18:24])),
		tpa: netip.AddrFrom4([4]byte(b[24:28])),
	}, true
}

// conflicts reports whether p shows another host than self using addr
// (RFC 5227 2.1.1): one that sends from it, or that probes for it too.
func (p arpPacket) conflicts(addr netip.Addr, self net.HardwareAddr) bool {
	if bytes.Equal(p.sha, self) {
		return false
	}
	return p.spa == addr || (p.op == arpRequest && p.spa.IsUnspecified() && p.tpa == addr)
}

// probeAddress looks for another user of addr on ifi until the deadline
// (RFC 5227 probes: from 0.0.0.0, at once and half-way) and reports
// whether it found one.
func probeAddress(ctx context.Context, ifi *net.Interface, addr netip.Addr, deadline time.Time) (bool, error) {
	c, err := packet.Listen(ifi, packet.Datagram, unix.ETH_P_ARP, nil)
	if err != nil {
		return false, fmt.Errorf("ARP socket on %s: %w", ifi.Name, err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Now()) })
	defer stop()
	probe := arpPacket{op: arpRequest, sha: ifi.HardwareAddr, spa: netip.IPv4Unspecified(),
		tha: make(net.HardwareAddr, 6), tpa: addr}.marshal()
	all := &packet.Addr{HardwareAddr: net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}
	send := func() error {
		if _, err := c.WriteTo(probe, all); err != nil {
			return fmt.Errorf("ARP probe for %s on %s: %w", addr, ifi.Name, err)
		}
		return nil
	}
	if err := send(); err != nil {
		return false, err
	}
	again := time.Now().Add(time.Until(deadline) / 2)
	buf := make([]byte, 128)
	for {
		next := deadline
		if !again.IsZero() {
			next = again
		}
		if err := c.SetReadDeadline(next); err != nil {
			return false, err
		}
		n, _, err := c.ReadFrom(buf)
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() == nil:
			if again.IsZero() {
				return false, nil
			}
			again = time.Time{}
			if err := send(); err != nil {
				return false, err
			}
			continue
		case err != nil:
			return false, fmt.Errorf("ARP on %s: %w", ifi.Name, errors.Join(err, ctx.Err()))
		}
		if p, ok := parseARP(buf[:n]); ok && p.conflicts(addr, ifi.HardwareAddr) {
			return true, nil
		}
	}
}
