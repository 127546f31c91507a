// Package transparent opens the sockets nftables tproxy hands LAN traffic
// to, and reads where that traffic was going. tproxy assigns a packet only
// to a socket with IP_TRANSPARENT (IPV6_TRANSPARENT) listening on its
// port, and lets it through untouched otherwise: what steers by tproxy
// fails open when the process owning the socket is gone. The transparent
// proxy (sessions/proxy) and the DNS forwarder's intercept (sessions/dns)
// share them.
package transparent

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// Listen listens on port of every address of one family ("tcp4" or
// "tcp6") with IP_TRANSPARENT (IPV6_TRANSPARENT). An accepted
// connection's local address is the destination its client asked for.
func Listen(ctx context.Context, network string, port int) (net.Listener, error) {
	level, opt, addr := unix.SOL_IP, unix.IP_TRANSPARENT, "0.0.0.0"
	if network == "tcp6" {
		level, opt, addr = unix.SOL_IPV6, unix.IPV6_TRANSPARENT, "::"
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), level, opt, 1) })
		return errors.Join(err, serr)
	}}
	ln, err := lc.Listen(ctx, network, net.JoinHostPort(addr, strconv.Itoa(port)))
	if err != nil {
		return nil, fmt.Errorf("listen on %s port %d with IP_TRANSPARENT: %w", network, port, err)
	}
	return ln, nil
}

// ListenUDP opens a UDP socket of addr's family with IP_TRANSPARENT
// (IPV6_TRANSPARENT) on addr, which may be another host's: a receiver on
// the unspecified address (orig set: datagrams come with their original
// destination, which OrigDst reads), or a sender bound to the address a
// reply must come from. SO_REUSEADDR lets the two share a port, and
// several senders one address.
func ListenUDP(ctx context.Context, addr netip.AddrPort, orig bool) (*net.UDPConn, error) {
	network, level, opt, recv := "udp4", unix.SOL_IP, unix.IP_TRANSPARENT, unix.IP_RECVORIGDSTADDR
	if addr.Addr().Is6() {
		network, level, opt, recv = "udp6", unix.SOL_IPV6, unix.IPV6_TRANSPARENT, unix.IPV6_RECVORIGDSTADDR
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = errors.Join(
				unix.SetsockoptInt(int(fd), level, opt, 1),
				unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1))
			if orig && serr == nil {
				serr = unix.SetsockoptInt(int(fd), level, recv, 1)
			}
		})
		return errors.Join(err, serr)
	}}
	pc, err := lc.ListenPacket(ctx, network, addr.String())
	if err != nil {
		return nil, fmt.Errorf("udp socket on %s with IP_TRANSPARENT: %w", addr, err)
	}
	return pc.(*net.UDPConn), nil
}

// OOBSize is room enough for the control messages a receiver of ListenUDP
// gets a datagram with.
const OOBSize = 128

// OrigDst decodes the destination a LAN datagram was sent to from the
// control messages the transparent socket received it with
// (IP_ORIGDSTADDR, IPV6_ORIGDSTADDR: a sockaddr_in or sockaddr_in6). An
// IPv4 destination is IPv4, never IPv4-mapped.
func OrigDst(oob []byte) (netip.AddrPort, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("original destination: %w", err)
	}
	for _, m := range msgs {
		d := m.Data
		switch {
		case m.Header.Level == unix.SOL_IP && m.Header.Type == unix.IP_ORIGDSTADDR:
			if len(d) < unix.SizeofSockaddrInet4 || binary.NativeEndian.Uint16(d) != unix.AF_INET {
				return netip.AddrPort{}, errors.New("original destination: not a sockaddr_in")
			}
			return netip.AddrPortFrom(netip.AddrFrom4([4]byte(d[4:8])), binary.BigEndian.Uint16(d[2:4])), nil
		case m.Header.Level == unix.SOL_IPV6 && m.Header.Type == unix.IPV6_ORIGDSTADDR:
			if len(d) < unix.SizeofSockaddrInet6 || binary.NativeEndian.Uint16(d) != unix.AF_INET6 {
				return netip.AddrPort{}, errors.New("original destination: not a sockaddr_in6")
			}
			// An IPv4 destination reaches only the IPv4 socket; unmapped
			// all the same, as the TCP listener's.
			return netip.AddrPortFrom(netip.AddrFrom16([16]byte(d[8:24])).Unmap(), binary.BigEndian.Uint16(d[2:4])), nil
		}
	}
	return netip.AddrPort{}, errors.New("original destination: not in the datagram's control messages")
}
