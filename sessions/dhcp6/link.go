package dhcp6

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"syscall"

	"github.com/braid-router/braid/sessions/linklocal"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// The DHCPv6 ports (RFC 8415 section 7.2).
const (
	clientPort = 546
	serverPort = 547
)

// allServers is All_DHCP_Relay_Agents_and_Servers (RFC 8415 section 7.1),
// where the client sends every message.
var allServers = netip.MustParseAddr("ff02::1:2")

// link is the client's UDP socket on its link: port 546 of every address
// ([::]:546, SO_REUSEADDR beside the other links' clients), bound to the
// link (SO_BINDTODEVICE), so it reads only what the servers of this link
// answer; it sends from the link's link-local address, by index, to
// ff02::1:2. Nothing in it is Ethernet: a TUN link (point-to-point, no
// MAC address, its link-local address negotiated by IPV6CP) is the same.
type link struct {
	ifi  *net.Interface
	ll   netip.Addr
	conn *ipv6.PacketConn
}

// received is a server's message, or the socket's error.
type received struct {
	msg *dhcpv6.Message
	src netip.Addr
	err error
}

// openLink opens the client's socket on the link name, or says why it
// cannot yet (missing, down, without a usable link-local address).
func openLink(ctx context.Context, name string) (*link, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return nil, fmt.Errorf("link %s: %w", name, err)
	}
	if ifi.Flags&net.FlagUp == 0 {
		return nil, fmt.Errorf("link %s is down", name)
	}
	if ifi.Flags&net.FlagRunning == 0 {
		return nil, fmt.Errorf("link %s has no carrier", name)
	}
	ll, err := linklocal.Usable(ifi)
	if err != nil {
		return nil, err
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = errors.Join(
				unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1),
				unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, name))
		})
		return errors.Join(err, serr)
	}}
	pc, err := lc.ListenPacket(ctx, "udp6", "[::]:"+strconv.Itoa(clientPort))
	if err != nil {
		return nil, fmt.Errorf("UDP port %d on %s: %w", clientPort, name, err)
	}
	conn := ipv6.NewPacketConn(pc)
	if err := errors.Join(conn.SetMulticastInterface(ifi), conn.SetMulticastLoopback(false)); err != nil {
		pc.Close()
		return nil, fmt.Errorf("UDP port %d on %s: %w", clientPort, name, err)
	}
	return &link{ifi: ifi, ll: ll, conn: conn}, nil
}

func (l *link) close() { l.conn.Close() }

// read delivers the server messages the socket reads until it is closed
// (its error is the last thing delivered) or done. What does not decode
// as a client/server message (a relay's, garbage) is dropped.
func (l *link) read(out chan<- received, done <-chan struct{}) {
	buf := make([]byte, 65536)
	for {
		n, _, from, err := l.conn.ReadFrom(buf)
		var rx received
		switch {
		case err != nil:
			rx.err = err
		default:
			m, derr := dhcpv6.MessageFromBytes(buf[:n])
			if derr != nil {
				continue
			}
			rx.msg = m
			if ua, ok := from.(*net.UDPAddr); ok {
				rx.src = ua.AddrPort().Addr().WithZone("")
			}
		}
		select {
		case out <- rx:
		case <-done:
			return
		}
		if err != nil {
			return
		}
	}
}

// send sends m from the link-local address to ff02::1:2 on the link.
func (l *link) send(m *dhcpv6.Message) error {
	cm := &ipv6.ControlMessage{Src: l.ll.AsSlice(), IfIndex: l.ifi.Index}
	dst := &net.UDPAddr{IP: allServers.AsSlice(), Port: serverPort}
	if _, err := l.conn.WriteTo(m.ToBytes(), cm, dst); err != nil {
		return fmt.Errorf("send %s on %s: %w", m.Type(), l.ifi.Name, err)
	}
	return nil
}

// check says whether the link is still the one the socket is on (see
// linklocal.Check).
func (l *link) check() error { return linklocal.Check(l.ifi, l.ll) }
