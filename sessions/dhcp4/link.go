package dhcp4

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"syscall"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/mdlayher/packet"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"github.com/braid-router/braid/sessions/dhcp4/rfc2131"
)

// link is the client's two sockets on its interface:
//
//   - a packet socket (AF_PACKET, IPv4, filtered in the kernel to UDP
//     port 68) that reads every server message, whatever the client's
//     address, the routes and rp_filter say, and sends what goes out
//     before the client may use its address (from 0.0.0.0, to all
//     stations), with IPv4 and UDP headers of its own;
//   - a UDP socket on 0.0.0.0:68 bound to the interface
//     (SO_BINDTODEVICE, so that each uplink's client has its own port 68;
//     SO_REUSEADDR beside any other), which sends what goes from the
//     leased address (a renewal to the server, a rebinding broadcast)
//     through the kernel's routing and ARP, and takes the server's
//     unicast answers off the kernel's hands.
type link struct {
	ifi *net.Interface
	raw *packet.Conn
	udp *ipv4.PacketConn

	mu sync.Mutex
	// serverHW is the hardware address the last server message came
	// from: where a RELEASE goes when the leased address is already off
	// the link.
	serverHW net.HardwareAddr
}

// received is a server's message and where it came from.
type received struct {
	msg *dhcpv4.DHCPv4
	src netip.AddrPort
}

// allStations is the Ethernet broadcast address.
var allStations = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// openLink opens the client's sockets on interface name.
func openLink(ctx context.Context, name string) (*link, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return nil, fmt.Errorf("interface %s: %w", name, err)
	}
	if len(ifi.HardwareAddr) != 6 {
		return nil, fmt.Errorf("interface %s has no Ethernet address (%q): DHCP needs one", name, ifi.HardwareAddr)
	}
	raw, err := packet.Listen(ifi, packet.Datagram, unix.ETH_P_IP, &packet.Config{Filter: replyFilter()})
	if err != nil {
		return nil, fmt.Errorf("packet socket on %s: %w", name, err)
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = errors.Join(
				unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1),
				unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 1),
				unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, name))
		})
		return errors.Join(err, serr)
	}}
	pc, err := lc.ListenPacket(ctx, "udp4", "0.0.0.0:"+strconv.Itoa(clientPort))
	if err != nil {
		raw.Close()
		return nil, fmt.Errorf("UDP port %d on %s: %w", clientPort, name, err)
	}
	return &link{ifi: ifi, raw: raw, udp: ipv4.NewPacketConn(pc)}, nil
}

// close closes both sockets, which ends their readers.
func (l *link) close() {
	l.raw.Close()
	l.udp.Close()
}

// read delivers every server message either socket reads until they are
// closed. Messages that do not decode are dropped.
func (l *link) read(out chan<- received, done <-chan struct{}) {
	var wg sync.WaitGroup
	deliver := func(payload []byte, src netip.AddrPort) {
		m, err := dhcpv4.FromBytes(payload)
		if err != nil || m.OpCode != dhcpv4.OpcodeBootReply {
			return
		}
		select {
		case out <- received{msg: m, src: src}:
		case <-done:
		}
	}
	wg.Go(func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := l.raw.ReadFrom(buf)
			if err != nil {
				return
			}
			payload, src, ok := unframe(buf[:n])
			if !ok {
				continue
			}
			if a, ok := from.(*packet.Addr); ok && src.Port() == serverPort {
				l.mu.Lock()
				l.serverHW = a.HardwareAddr
				l.mu.Unlock()
			}
			deliver(payload, src)
		}
	})
	wg.Go(func() {
		buf := make([]byte, 65536)
		for {
			n, _, from, err := l.udp.ReadFrom(buf)
			if err != nil {
				return
			}
			ua, _ := from.(*net.UDPAddr)
			deliver(buf[:n], ua.AddrPort())
		}
	})
	wg.Wait()
}

// send sends what the client asks for. Before the client may use its
// address it goes out of the packet socket, from 0.0.0.0 to all
// stations; after, through the UDP socket from the leased address. When
// the kernel cannot send from that address (it is not on the link yet,
// or any more: a RELEASE after braid took the address off), the packet
// socket sends it from that address, to the server's hardware address
// when it is known.
func (l *link) send(s rfc2131.Send) error {
	payload := s.Msg.ToBytes()
	if s.From.IsUnspecified() {
		return l.sendRaw(payload, s, allStations)
	}
	cm := &ipv4.ControlMessage{Src: s.From.AsSlice(), IfIndex: l.ifi.Index}
	dst := &net.UDPAddr{IP: s.To.AsSlice(), Port: serverPort}
	_, err := l.udp.WriteTo(payload, cm, dst)
	if err == nil {
		return nil
	}
	hw := allStations
	if s.To != rfc2131.Broadcast {
		l.mu.Lock()
		if l.serverHW != nil {
			hw = l.serverHW
		}
		l.mu.Unlock()
	}
	if rerr := l.sendRaw(payload, s, hw); rerr != nil {
		return fmt.Errorf("send %s from %s to %s: %w (and through the packet socket: %v)", s.Msg.MessageType(), s.From, s.To, err, rerr)
	}
	return nil
}

func (l *link) sendRaw(payload []byte, s rfc2131.Send, hw net.HardwareAddr) error {
	if _, err := l.raw.WriteTo(frame(payload, s.From, s.To), &packet.Addr{HardwareAddr: hw}); err != nil {
		return fmt.Errorf("send %s from %s to %s on %s: %w", s.Msg.MessageType(), s.From, s.To, l.ifi.Name, err)
	}
	return nil
}
