package peer

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/Jigsaw-Code/outline-sdk/transport/shadowsocks"

	"github.com/braid-router/braid/internal/nstest"
	"github.com/braid-router/braid/sessions/peer/socksaddr"
)

// testPeer is a Server serving on the loopback of a namespace of its own,
// and what it rejected, in order.
type testPeer struct {
	t       *testing.T
	ns      string
	addr    string
	key     *shadowsocks.EncryptionKey
	mu      sync.Mutex
	rejects []string
	changed chan struct{}
}

func startPeer(t *testing.T, s *Server, allowLocal ...string) *testPeer {
	t.Helper()
	ns := nstest.New(t)
	key, err := shadowsocks.NewEncryptionKey("chacha20-ietf-poly1305", "the right key")
	if err != nil {
		t.Fatal(err)
	}
	p := &testPeer{t: t, ns: ns, key: key, changed: make(chan struct{}, 100)}
	s.OnReject = func(reason string) {
		p.mu.Lock()
		p.rejects = append(p.rejects, reason)
		p.mu.Unlock()
		p.changed <- struct{}{}
	}
	var ln net.Listener
	nstest.Do(t, ns, func() (err error) {
		var lc net.ListenConfig
		lc.SetMultipathTCP(true)
		ln, err = lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
		return err
	})
	p.addr = ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln, key, allowLocal, nstest.Logger(t)) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return p
}

// dial connects to the peer from inside its namespace.
func (p *testPeer) dial() *net.TCPConn {
	p.t.Helper()
	var c net.Conn
	nstest.Do(p.t, p.ns, func() (err error) {
		c, err = net.Dial("tcp", p.addr)
		return err
	})
	p.t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// waitReject waits until the peer has rejected n connections and returns
// their reasons.
func (p *testPeer) waitReject(n int) []string {
	p.t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		p.mu.Lock()
		got := append([]string(nil), p.rejects...)
		p.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-p.changed:
		case <-deadline:
			p.t.Fatalf("the peer rejected %v, want %d rejections", got, n)
		}
	}
}

// stream is what a shadowsocks client sends to reach dst with payload,
// encrypted with key.
func stream(t *testing.T, key *shadowsocks.EncryptionKey, dst socksaddr.Addr, payload string) []byte {
	t.Helper()
	var buf writeBuffer
	w := shadowsocks.NewWriter(&buf, key)
	if _, err := w.Write(append(socksaddr.Append(nil, dst), payload...)); err != nil {
		t.Fatal(err)
	}
	return buf.b
}

type writeBuffer struct{ b []byte }

func (w *writeBuffer) Write(p []byte) (int, error) { w.b = append(w.b, p...); return len(p), nil }

// readAll reads c until it ends and fails the test unless it ends with no
// byte, by the peer closing it (not by the test's own deadline).
func readNothing(t *testing.T, c *net.TCPConn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(60 * time.Second))
	b, err := io.ReadAll(c)
	if len(b) != 0 {
		t.Fatalf("the peer wrote %d bytes to a rejected connection: %x", len(b), b)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the peer never closed the rejected connection")
	}
}

var nowhere = socksaddr.Addr{IP: netip.MustParseAddr("127.0.0.1"), Port: 9}

// A wrong key, random bytes and a truncated stream get no byte: the peer
// reads until the client closes, then closes too, and counts each.
func TestRejectedConnectionsGetNothing(t *testing.T) {
	nstest.RequireRoot(t)
	p := startPeer(t, &Server{})
	wrong, err := shadowsocks.NewEncryptionKey("chacha20-ietf-poly1305", "a wrong key")
	if err != nil {
		t.Fatal(err)
	}
	garbage := make([]byte, 100)
	rand.Read(garbage)
	good := stream(t, p.key, nowhere, "")
	for i, c := range []struct {
		name, reason string
		send         []byte
	}{
		{"wrong key", RejectAuth, stream(t, wrong, nowhere, "GET / HTTP/1.0\r\n\r\n")},
		{"random bytes", RejectAuth, garbage},
		{"salt only", RejectTruncated, good[:32]},
		{"truncated first chunk", RejectTruncated, good[:32+18+3]},
		{"nothing", RejectTruncated, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn := p.dial()
			if _, err := conn.Write(c.send); err != nil {
				t.Fatal(err)
			}
			// More garbage after the first chunk is read and discarded
			// too, until the client closes.
			if c.reason == RejectAuth {
				got := p.waitReject(i + 1)
				if got[i] != c.reason {
					t.Fatalf("rejected as %q, want %q", got[i], c.reason)
				}
				if _, err := conn.Write(garbage); err != nil {
					t.Fatalf("the peer stopped reading a rejected connection: %v", err)
				}
			}
			conn.CloseWrite()
			readNothing(t, conn)
			got := p.waitReject(i + 1)
			if got[i] != c.reason {
				t.Fatalf("rejected as %q, want %q", got[i], c.reason)
			}
		})
	}
}

// A rejected connection that stays open without sending is closed after
// the idle timeout, still without a byte.
func TestRejectedConnectionEndsWhenIdle(t *testing.T) {
	nstest.RequireRoot(t)
	p := startPeer(t, &Server{IdleTimeout: time.Second})
	conn := p.dial()
	good := stream(t, p.key, nowhere, "")
	if _, err := conn.Write(good[:40]); err != nil {
		t.Fatal(err)
	}
	readNothing(t, conn)
	if got := p.waitReject(1); got[0] != RejectTruncated {
		t.Fatalf("rejected as %v, want %s", got, RejectTruncated)
	}
}

// A first packet sent again is a replay: the first time it authenticates
// (and is refused for its local destination: the key was right), the
// second time it gets nothing.
func TestReplayedFirstPacketGetsNothing(t *testing.T) {
	nstest.RequireRoot(t)
	p := startPeer(t, &Server{})
	first := stream(t, p.key, nowhere, "hello")
	for i, want := range []string{RejectLocal, RejectReplay} {
		conn := p.dial()
		if _, err := conn.Write(first); err != nil {
			t.Fatal(err)
		}
		conn.CloseWrite()
		readNothing(t, conn)
		if got := p.waitReject(i + 1); got[i] != want {
			t.Fatalf("connection %d rejected as %v, want %s", i, got, want)
		}
	}
}

// Local destinations are refused: loopback, the unspecified address (which
// Linux connects to the host itself), link-local, IPv4-mapped forms, and a
// name that resolves to loopback (from /etc/hosts: every address the dial
// tries is checked).
func TestLocalDestinationsRefused(t *testing.T) {
	nstest.RequireRoot(t)
	p := startPeer(t, &Server{})
	for i, dst := range []string{"127.0.0.1", "0.0.0.0", "::1", "::", "169.254.1.1", "fe80::1", "::ffff:127.0.0.1", "224.0.0.1", "localhost"} {
		conn := p.dial()
		a := socksaddr.Addr{Domain: dst, Port: 80}
		if ip, err := netip.ParseAddr(dst); err == nil {
			a = socksaddr.Addr{IP: ip, Port: 80}
		}
		if _, err := conn.Write(stream(t, p.key, a, "")); err != nil {
			t.Fatal(err)
		}
		conn.CloseWrite()
		readNothing(t, conn)
		if got := p.waitReject(i + 1); got[i] != RejectLocal {
			t.Fatalf("%s: rejected as %v, want %s", dst, got, RejectLocal)
		}
	}
}

// Past its cap, a source's rejected connections are closed at once.
func TestRejectedConnectionsCappedPerSource(t *testing.T) {
	nstest.RequireRoot(t)
	p := startPeer(t, &Server{RejectedPerSource: 2})
	garbage := make([]byte, 100)
	rand.Read(garbage)
	var held []*net.TCPConn
	for i := range 2 {
		c := p.dial()
		c.Write(garbage)
		p.waitReject(i + 1)
		held = append(held, c)
	}
	third := p.dial()
	third.Write(garbage)
	// Closed by the peer without the client closing first.
	readNothing(t, third)
	if got := p.waitReject(4); got[2] != RejectAuth || got[3] != RejectCapped {
		t.Fatalf("rejections %v, want auth, auth, auth, capped", got)
	}
	for _, c := range held {
		c.CloseWrite()
		readNothing(t, c)
	}
}
