package dns

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/braid-router/braid/internal/transparent"
)

// Sizes of what the listeners read.
const (
	// maxUDPQuery is the largest UDP query read whole; a longer one is
	// cut, fails to parse and gets FORMERR.
	maxUDPQuery = 4096
	// maxTCPQuery is the largest TCP query accepted: a query is one
	// question and an OPT record, far below it. A longer length prefix
	// closes the connection.
	maxTCPQuery = 4096
	// tcpInFlight bounds the queries of one TCP connection answered at
	// once (RFC 7766 section 6.2.1.1: pipelined, answered out of order);
	// the connection is not read while it is reached.
	tcpInFlight = 16
	// udpReadBuffer is the receive buffer asked for each UDP socket.
	udpReadBuffer = 1 << 20
	// writeTimeout bounds the write of one reply.
	writeTimeout = 5 * time.Second
)

// listenConfig binds with IP_FREEBIND or IPV6_FREEBIND, so that an
// address the box does not hold yet (a LAN address still tentative, a
// delegated prefix's address being added) does not fail the bind: the
// socket answers as soon as the address is there.
func listenConfig() *net.ListenConfig {
	return &net.ListenConfig{Control: func(network, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if network == "udp6" || network == "tcp6" {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_FREEBIND, 1)
			} else {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_FREEBIND, 1)
			}
		})
		if err != nil {
			return err
		}
		if serr != nil {
			return os.NewSyscallError("setsockopt freebind", serr)
		}
		return nil
	}}
}

// listen opens the UDP socket and the TCP listener on addr:port.
func listen(ctx context.Context, addr netip.Addr, port int) (*net.UDPConn, *net.TCPListener, error) {
	addr = addr.Unmap()
	ap := netip.AddrPortFrom(addr, uint16(port)).String()
	udp, tcp := "udp4", "tcp4"
	if addr.Is6() {
		udp, tcp = "udp6", "tcp6"
	}
	lc := listenConfig()
	pc, err := lc.ListenPacket(ctx, udp, ap)
	if err != nil {
		return nil, nil, fmt.Errorf("dns: listen udp %s: %w", ap, err)
	}
	ln, err := lc.Listen(ctx, tcp, ap)
	if err != nil {
		pc.Close()
		return nil, nil, fmt.Errorf("dns: listen tcp %s: %w", ap, err)
	}
	uc := pc.(*net.UDPConn)
	// Room for a burst of queries while the readers catch up (the kernel
	// caps it at net.core.rmem_max).
	uc.SetReadBuffer(udpReadBuffer)
	return uc, ln.(*net.TCPListener), nil
}

// listenIntercept opens the transparent sockets of dns.intercept on
// port, UDP and TCP, IPv4 and IPv6 (internal/transparent): tproxy hands
// them the LAN's queries to addresses that are not the box's.
func listenIntercept(ctx context.Context, port int) ([]*net.UDPConn, []*net.TCPListener, error) {
	var (
		udps []*net.UDPConn
		tcps []*net.TCPListener
	)
	fail := func(err error) ([]*net.UDPConn, []*net.TCPListener, error) {
		for _, c := range udps {
			c.Close()
		}
		for _, l := range tcps {
			l.Close()
		}
		return nil, nil, fmt.Errorf("dns: intercept: %w", err)
	}
	for _, unspec := range []netip.Addr{netip.IPv4Unspecified(), netip.IPv6Unspecified()} {
		uc, err := transparent.ListenUDP(ctx, netip.AddrPortFrom(unspec, uint16(port)), true)
		if err != nil {
			return fail(err)
		}
		uc.SetReadBuffer(udpReadBuffer)
		udps = append(udps, uc)
		network := "tcp4"
		if unspec.Is6() {
			network = "tcp6"
		}
		ln, err := transparent.Listen(ctx, network, port)
		if err != nil {
			return fail(err)
		}
		tcps = append(tcps, ln.(*net.TCPListener))
	}
	return udps, tcps, nil
}

// limiter counts what each client holds (queries in flight, TCP
// connections) and in total, each up to a bound.
type limiter struct {
	perClient, total int

	mu   sync.Mutex
	held map[netip.Addr]int
	sum  int
}

func newLimiter(perClient, total int) *limiter {
	return &limiter{perClient: perClient, total: total, held: map[netip.Addr]int{}}
}

// acquire takes one for client, false when a bound is reached.
func (l *limiter) acquire(client netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sum >= l.total || l.held[client] >= l.perClient {
		return false
	}
	l.held[client]++
	l.sum++
	return true
}

// release gives back what acquire took.
func (l *limiter) release(client netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sum--
	if l.held[client]--; l.held[client] <= 0 {
		delete(l.held, client)
	}
}

// serveUDP answers the queries reaching c until it is closed. Each query
// is answered on a goroutine of its own, within the in-flight bounds: a
// query beyond them is dropped (the client asks again).
func (s *Server) serveUDP(ctx context.Context, e *engine, c *net.UDPConn, inflight *limiter, wg *sync.WaitGroup) {
	buf := make([]byte, maxUDPQuery)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
				return
			}
			continue // an ICMP error reported on the socket, say
		}
		s.stats.QueriesUDP.Add(1)
		s.answerUDP(ctx, e, inflight, wg, from.Addr().Unmap(), buf[:n], func(out []byte) {
			c.SetWriteDeadline(time.Now().Add(writeTimeout))
			c.WriteToUDPAddrPort(out, from)
		})
	}
}

// answerUDP answers the datagram query from client on a goroutine of wg,
// handing the answer to reply, unless client has too many queries in
// flight already: then the query is refused, unanswered.
func (s *Server) answerUDP(ctx context.Context, e *engine, inflight *limiter, wg *sync.WaitGroup, client netip.Addr, query []byte, reply func([]byte)) {
	if !inflight.acquire(client) {
		s.stats.Refused.Add(1)
		return
	}
	raw := append([]byte(nil), query...)
	wg.Go(func() {
		defer inflight.release(client)
		if out := e.answer(ctx, raw, true); out != nil {
			reply(out)
		}
	})
}

// serveInterceptUDP answers the queries tproxy hands the transparent
// socket c, as serveUDP does, each from the address and port it was sent
// to (its original destination, from the datagram's control messages):
// the client's socket, connected to that address, takes nothing else.
func (s *Server) serveInterceptUDP(ctx context.Context, e *engine, c *net.UDPConn, inflight *limiter, wg *sync.WaitGroup) {
	buf := make([]byte, maxUDPQuery)
	oob := make([]byte, transparent.OOBSize)
	for {
		n, oobn, _, from, err := c.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
				return
			}
			continue
		}
		s.stats.QueriesUDP.Add(1)
		dst, err := transparent.OrigDst(oob[:oobn])
		if err != nil {
			s.stats.Malformed.Add(1) // no way to answer it
			continue
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		s.answerUDP(ctx, e, inflight, wg, from.Addr(), buf[:n], func(out []byte) {
			replyFrom(ctx, dst, from, out)
		})
	}
}

// replyFrom sends out to client from src, an address that is not the
// box's: through a transparent socket bound to src for this one reply
// (IP_PKTINFO could set the source address, not the port). An unconnected
// socket is never what tproxy hands a datagram to (it looks up connected
// sockets, then the listener of its port), so the client's next queries
// still reach the intercept socket.
func replyFrom(ctx context.Context, src, client netip.AddrPort, out []byte) {
	c, err := transparent.ListenUDP(ctx, src, false)
	if err != nil {
		return // the client asks again
	}
	defer c.Close()
	c.SetWriteDeadline(time.Now().Add(writeTimeout))
	c.WriteToUDPAddrPort(out, client)
}

// serveTCP accepts connections on ln until it is closed, within the
// connection bounds: one beyond them is closed at once.
func (s *Server) serveTCP(ctx context.Context, e *engine, ln *net.TCPListener, conns, inflight *limiter, open *connSet, wg *sync.WaitGroup) {
	for {
		c, err := ln.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
				return
			}
			continue
		}
		client := c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()
		if !conns.acquire(client) {
			s.stats.Refused.Add(1)
			c.Close()
			continue
		}
		if !open.add(c) {
			conns.release(client)
			c.Close()
			return
		}
		wg.Go(func() {
			defer conns.release(client)
			defer open.remove(c)
			s.serveConn(ctx, e, c, client, inflight)
		})
	}
}

// serveConn answers the queries of one TCP connection (RFC 7766): each
// prefixed by its length, several on one connection, answered as they
// are ready, up to tcpInFlight at once. The connection is closed when it
// stays idle (no query, none in flight) for the idle timeout, on a
// malformed length, or when the server stops.
func (s *Server) serveConn(ctx context.Context, e *engine, c net.Conn, client netip.Addr, inflight *limiter) {
	defer c.Close()
	var (
		wmu   sync.Mutex // one reply written at a time
		slots = make(chan struct{}, tcpInFlight)
		wg    sync.WaitGroup
	)
	defer wg.Wait()
	idle := cmp.Or(s.TCPIdle, DefaultTCPIdle)
	var hdr [2]byte
	for {
		c.SetReadDeadline(time.Now().Add(idle))
		n, err := io.ReadFull(c, hdr[:])
		if err != nil {
			var ne net.Error
			if n == 0 && errors.As(err, &ne) && ne.Timeout() && len(slots) > 0 {
				continue // answers still to come: not idle
			}
			return
		}
		size := int(binary.BigEndian.Uint16(hdr[:]))
		if size > maxTCPQuery {
			s.stats.Malformed.Add(1)
			return
		}
		raw := make([]byte, size)
		c.SetReadDeadline(time.Now().Add(idle))
		if _, err := io.ReadFull(c, raw); err != nil {
			return
		}
		s.stats.QueriesTCP.Add(1)
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		if !inflight.acquire(client) {
			<-slots
			s.stats.Refused.Add(1)
			continue // RFC 7766 lets a server drop a query; the client retries
		}
		wg.Go(func() {
			defer func() { <-slots }()
			defer inflight.release(client)
			out := e.answer(ctx, raw, false)
			if out == nil {
				return
			}
			msg := make([]byte, 2+len(out))
			binary.BigEndian.PutUint16(msg, uint16(len(out)))
			copy(msg[2:], out)
			wmu.Lock()
			defer wmu.Unlock()
			c.SetWriteDeadline(time.Now().Add(writeTimeout))
			if _, err := c.Write(msg); err != nil {
				c.Close() // the reader sees it and ends the connection
			}
		})
	}
}

// connSet is the open TCP connections, closed when the server stops.
type connSet struct {
	mu     sync.Mutex
	conns  map[*net.TCPConn]struct{}
	closed bool
}

// add records c, false once the set is closed.
func (s *connSet) add(c *net.TCPConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if s.conns == nil {
		s.conns = map[*net.TCPConn]struct{}{}
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *connSet) remove(c *net.TCPConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
}

// close closes every connection and refuses new ones.
func (s *connSet) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
}
