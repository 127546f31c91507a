package peer

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Jigsaw-Code/outline-sdk/transport/shadowsocks"

	"github.com/braid-router/braid/internal/netns"
	"github.com/braid-router/braid/internal/nstest"
	"github.com/braid-router/braid/sessions/peer/socksaddr"
)

// udpPeer is a Server's UDP relay serving on the loopback of a namespace
// of its own, with an echo server there that allowLocal lets the relay
// reach (and one it does not), and what the relay rejected.
type udpPeer struct {
	t       *testing.T
	s       *Server
	ns      string
	addr    netip.AddrPort
	key     *shadowsocks.EncryptionKey
	echo    netip.AddrPort // in allowLocal
	local   netip.AddrPort // not
	mu      sync.Mutex
	rejects []string
	seen    []string // what the echo servers received: "SOURCE PAYLOAD"
	changed chan struct{}
}

func startUDPPeer(t *testing.T, s *Server, listen string) *udpPeer {
	t.Helper()
	ns := nstest.New(t)
	key, err := shadowsocks.NewEncryptionKey("aes-128-gcm", "the right key")
	if err != nil {
		t.Fatal(err)
	}
	p := &udpPeer{t: t, s: s, ns: ns, key: key, changed: make(chan struct{}, 1)}
	s.OnRejectDatagram = func(reason string) {
		p.mu.Lock()
		p.rejects = append(p.rejects, reason)
		p.mu.Unlock()
		p.poke()
	}
	host := strings.TrimSuffix(strings.TrimPrefix(listen, "["), "]")
	p.echo = p.serveEcho(net.JoinHostPort(host, "0"))
	p.local = p.serveEcho(net.JoinHostPort(host, "0"))
	var pc *net.UDPConn
	nstest.Do(t, ns, func() (err error) {
		pc, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(host), 0)))
		return err
	})
	p.addr = pc.LocalAddr().(*net.UDPAddr).AddrPort()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		// The relay opens its associations' sockets and looks routes up
		// on this thread: in the namespace.
		runtime.LockOSThread()
		if err := netns.Enter(ns); err != nil {
			done <- err
			return
		}
		done <- s.ServeUDP(ctx, pc, key, []string{p.echo.String()}, nstest.Logger(t))
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeUDP: %v", err)
		}
		if st := s.Stats(); st.Associations != 0 {
			t.Errorf("%d associations left once the relay stopped", st.Associations)
		}
	})
	return p
}

func (p *udpPeer) poke() {
	select {
	case p.changed <- struct{}{}:
	default:
	}
}

// serveEcho runs a UDP server on addr in the peer's namespace that
// answers each datagram with "echo PAYLOAD", and records it.
func (p *udpPeer) serveEcho(addr string) netip.AddrPort {
	p.t.Helper()
	var c *net.UDPConn
	nstest.Do(p.t, p.ns, func() error {
		a, err := net.ResolveUDPAddr("udp", addr)
		if err != nil {
			return err
		}
		c, err = net.ListenUDP("udp", a)
		return err
	})
	nstest.ServeUDP(p.t, c, func(payload []byte, from netip.AddrPort) {
		p.mu.Lock()
		p.seen = append(p.seen, fmt.Sprintf("%s %s", from, payload))
		p.mu.Unlock()
		p.poke()
		c.WriteToUDPAddrPort(append([]byte("echo "), payload...), from)
	})
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}

// wait waits until cond holds of what the relay rejected and what the
// echo servers received.
func (p *udpPeer) wait(what string, cond func(rejects, seen []string) bool) {
	p.t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		p.mu.Lock()
		rejects, seen := slices.Clone(p.rejects), slices.Clone(p.seen)
		p.mu.Unlock()
		if cond(rejects, seen) {
			return
		}
		select {
		case <-p.changed:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			p.t.Fatalf("%s: never; rejected %v, the echo servers received %v, the relay holds %+v", what, rejects, seen, p.s.Stats())
		}
	}
}

func (p *udpPeer) client() *net.UDPConn {
	p.t.Helper()
	var c *net.UDPConn
	nstest.Do(p.t, p.ns, func() (err error) {
		c, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(p.addr.Addr(), 0)))
		return err
	})
	p.t.Cleanup(func() { c.Close() })
	return c
}

// datagram is what a shadowsocks client sends for payload to dst.
func datagram(t *testing.T, key *shadowsocks.EncryptionKey, dst socksaddr.Addr, payload string) []byte {
	t.Helper()
	plain := append(socksaddr.Append(nil, dst), payload...)
	pkt, err := shadowsocks.Pack(make([]byte, key.SaltSize()+len(plain)+key.TagSize()), plain, key)
	if err != nil {
		t.Fatal(err)
	}
	return pkt
}

func addrOf(ap netip.AddrPort) socksaddr.Addr { return socksaddr.Addr{IP: ap.Addr(), Port: ap.Port()} }

// reply reads the next reply on c and opens it: where it came from and
// what it says.
func (p *udpPeer) reply(c *net.UDPConn) (socksaddr.Addr, string) {
	p.t.Helper()
	buf := make([]byte, maxDatagram)
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	n, from, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		p.t.Fatalf("no reply: %v", err)
	}
	if from != p.addr {
		p.t.Fatalf("a reply from %s, want the relay's %s", from, p.addr)
	}
	_, src, payload, reason := openDatagram(p.key, buf[:n])
	if reason != "" {
		p.t.Fatalf("the relay's reply does not open: %s", reason)
	}
	return src, string(payload)
}

// The relay sends a client's datagrams to their destination from one
// association socket per client, and seals the replies back with the
// address they came from; in IPv4 and IPv6.
func TestUDPRelay(t *testing.T) {
	nstest.RequireRoot(t)
	for _, listen := range []string{"127.0.0.1", "[::1]"} {
		t.Run(listen, func(t *testing.T) {
			p := startUDPPeer(t, &Server{}, listen)
			c := p.client()
			for i := range 3 {
				msg := fmt.Sprintf("hello %d", i)
				if _, err := c.WriteToUDPAddrPort(datagram(t, p.key, addrOf(p.echo), msg), p.addr); err != nil {
					t.Fatal(err)
				}
				src, got := p.reply(c)
				if src != addrOf(p.echo) || got != "echo "+msg {
					t.Fatalf("reply from %s: %q, want from %s: %q", src, got, p.echo, "echo "+msg)
				}
			}
			// One association: the echo server saw one source port.
			p.mu.Lock()
			seen := slices.Clone(p.seen)
			p.mu.Unlock()
			from := map[string]bool{}
			for _, s := range seen {
				f, _, _ := strings.Cut(s, " ")
				from[f] = true
			}
			if len(seen) != 3 || len(from) != 1 {
				t.Fatalf("the echo server received %v, want 3 datagrams from one association socket", seen)
			}
			if st := p.s.Stats(); st.Associations != 1 {
				t.Fatalf("the relay holds %d associations, want 1", st.Associations)
			}
			// Another client has an association of its own.
			c2 := p.client()
			c2.WriteToUDPAddrPort(datagram(t, p.key, addrOf(p.echo), "other"), p.addr)
			if _, got := p.reply(c2); got != "echo other" {
				t.Fatalf("second client: %q", got)
			}
			if st := p.s.Stats(); st.Associations != 2 {
				t.Fatalf("the relay holds %d associations, want 2", st.Associations)
			}
		})
	}
}

// Datagrams with a wrong key, random bytes, too short to hold a salt and
// a tag, with no whole address, replayed, or for a local destination
// outside allowLocal get nothing, reach no one and are counted; a good
// datagram after them is the only one the echo servers receive and the
// first reply.
func TestUDPRejectedDatagramsGetNothing(t *testing.T) {
	nstest.RequireRoot(t)
	p := startUDPPeer(t, &Server{}, "127.0.0.1")
	wrong, err := shadowsocks.NewEncryptionKey("aes-128-gcm", "a wrong key")
	if err != nil {
		t.Fatal(err)
	}
	garbage := make([]byte, 200)
	rand.Read(garbage)
	good := datagram(t, p.key, addrOf(p.echo), "first")
	badAddr, err := shadowsocks.Pack(make([]byte, 100), []byte{9, 1, 2, 3, 4, 0, 80, 'x'}, p.key)
	if err != nil {
		t.Fatal(err)
	}
	c := p.client()
	c.WriteToUDPAddrPort(good, p.addr)
	if _, got := p.reply(c); got != "echo first" {
		t.Fatalf("reply %q", got)
	}
	cases := []struct {
		name, reason string
		send         []byte
	}{
		{"wrong key", RejectAuth, datagram(t, wrong, addrOf(p.echo), "wrong key")},
		{"random bytes", RejectAuth, garbage},
		{"salt only", RejectTruncated, good[:16]},
		{"no tag", RejectTruncated, good[:16+15]},
		{"cut", RejectAuth, good[:len(good)-1]},
		{"empty", RejectTruncated, []byte{}},
		{"unknown address type", RejectAddress, badAddr},
		{"replayed", RejectReplay, good},
		{"loopback outside allowLocal", RejectLocal, datagram(t, p.key, addrOf(p.local), "local")},
		{"IPv4-mapped loopback", RejectLocal, datagram(t, p.key, socksaddr.Addr{IP: netip.MustParseAddr("::ffff:127.0.0.1"), Port: p.local.Port()}, "mapped")},
		{"IPv6 loopback", RejectLocal, datagram(t, p.key, socksaddr.Addr{IP: netip.IPv6Loopback(), Port: p.echo.Port()}, "v6")},
		{"link-local", RejectLocal, datagram(t, p.key, socksaddr.Addr{IP: netip.MustParseAddr("169.254.1.1"), Port: 53}, "ll")},
		{"multicast", RejectLocal, datagram(t, p.key, socksaddr.Addr{IP: netip.MustParseAddr("224.0.0.251"), Port: 5353}, "mc")},
		{"unspecified", RejectLocal, datagram(t, p.key, socksaddr.Addr{IP: netip.IPv4Unspecified(), Port: p.echo.Port()}, "any")},
		{"a name for loopback", RejectLocal, datagram(t, p.key, socksaddr.Addr{Domain: "localhost", Port: p.local.Port()}, "name")},
	}
	for i, tc := range cases {
		if _, err := c.WriteToUDPAddrPort(tc.send, p.addr); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		p.wait(tc.name+" rejected", func(rejects, _ []string) bool { return len(rejects) > i })
		p.mu.Lock()
		got := p.rejects[i]
		p.mu.Unlock()
		if got != tc.reason {
			t.Errorf("%s: rejected as %q, want %q", tc.name, got, tc.reason)
		}
	}
	c.WriteToUDPAddrPort(datagram(t, p.key, addrOf(p.echo), "last"), p.addr)
	if _, got := p.reply(c); got != "echo last" {
		t.Fatalf("the first reply after the rejected datagrams is %q, want %q", got, "echo last")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.seen) != 2 {
		t.Fatalf("the echo servers received %v, want only \"first\" and \"last\"", p.seen)
	}
}

// Associations are capped: a datagram that would open one more is
// dropped and counted; an idle association ends, and its place is
// free again.
func TestUDPAssociationsCappedAndIdle(t *testing.T) {
	nstest.RequireRoot(t)
	p := startUDPPeer(t, &Server{UDPAssociations: 2, UDPIdleTimeout: time.Second}, "127.0.0.1")
	var clients []*net.UDPConn
	for i := range 2 {
		c := p.client()
		c.WriteToUDPAddrPort(datagram(t, p.key, addrOf(p.echo), fmt.Sprint(i)), p.addr)
		p.reply(c)
		clients = append(clients, c)
	}
	third := p.client()
	third.WriteToUDPAddrPort(datagram(t, p.key, addrOf(p.echo), "third"), p.addr)
	p.wait("the third association capped", func(rejects, _ []string) bool { return len(rejects) == 1 && rejects[0] == RejectCapped })
	if st := p.s.Stats(); st.Associations != 2 {
		t.Fatalf("the relay holds %d associations, want its cap, 2", st.Associations)
	}
	p.wait("the idle associations ended", func(_, _ []string) bool { return p.s.Stats().Associations == 0 })
	third.WriteToUDPAddrPort(datagram(t, p.key, addrOf(p.echo), "third again"), p.addr)
	if _, got := p.reply(third); got != "echo third again" {
		t.Fatalf("reply %q", got)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if slices.ContainsFunc(p.seen, func(s string) bool { return strings.HasSuffix(s, " third") }) {
		t.Fatalf("the capped datagram reached the echo server: %v", p.seen)
	}
}

// A flood of bad datagrams from many sources is counted and holds
// nothing: no association, no reply.
func TestUDPFloodHoldsNothing(t *testing.T) {
	nstest.RequireRoot(t)
	p := startUDPPeer(t, &Server{}, "127.0.0.1")
	wrong, err := shadowsocks.NewEncryptionKey("aes-128-gcm", "a wrong key")
	if err != nil {
		t.Fatal(err)
	}
	const sources, each = 50, 60
	var conns []*net.UDPConn
	for range sources {
		conns = append(conns, p.client())
	}
	garbage := make([]byte, 1200)
	sent := 0
	for i := range each {
		for j, c := range conns {
			pkt := garbage[:50+(i*sources+j)%1000]
			if j%2 == 0 {
				pkt = datagram(t, wrong, addrOf(p.echo), "flood")
			} else {
				rand.Read(pkt)
			}
			if _, err := c.WriteToUDPAddrPort(pkt, p.addr); err != nil {
				t.Fatal(err)
			}
			sent++
		}
		// Within the sockets' buffers: a lost datagram would leave the
		// count short.
		p.wait("the flood counted so far", func(rejects, _ []string) bool { return len(rejects) == sent })
	}
	if st := p.s.Stats(); st.Associations != 0 {
		t.Fatalf("bad datagrams opened %d associations", st.Associations)
	}
	for _, c := range conns {
		c.SetReadDeadline(time.Now())
		if n, _, err := c.ReadFromUDPAddrPort(make([]byte, 10)); err == nil {
			t.Fatalf("a flooding client got a reply of %d octets", n)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.seen) != 0 {
		t.Fatalf("the flood reached the echo server: %d datagrams", len(p.seen))
	}
}

// A reply of the relay's, sent back to it, is a replay: its salts are in
// the relay's filter, so a captured reply cannot make the relay send its
// payload to the address it came from.
func TestUDPReflectedReplyIsAReplay(t *testing.T) {
	nstest.RequireRoot(t)
	p := startUDPPeer(t, &Server{}, "127.0.0.1")
	c := p.client()
	c.WriteToUDPAddrPort(datagram(t, p.key, addrOf(p.echo), "ping"), p.addr)
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	reply := make([]byte, maxDatagram)
	n, _, err := c.ReadFromUDPAddrPort(reply)
	if err != nil {
		t.Fatalf("no reply: %v", err)
	}
	c.WriteToUDPAddrPort(reply[:n], p.addr)
	p.wait("the reflected reply rejected", func(rejects, _ []string) bool { return len(rejects) == 1 })
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.rejects[0] != RejectReplay || len(p.seen) != 1 {
		t.Fatalf("the reflected reply: rejected as %v, the echo server received %v; want a replay, and only the ping", p.rejects, p.seen)
	}
}
