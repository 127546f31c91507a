package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/Jigsaw-Code/outline-sdk/transport/shadowsocks"
)

func TestTargetAddr(t *testing.T) {
	for _, c := range []struct {
		dst  string
		want []byte
	}{
		{"198.51.100.80:7", []byte{1, 198, 51, 100, 80, 0, 7}},
		{"[::ffff:198.51.100.80]:443", []byte{1, 198, 51, 100, 80, 1, 187}},
		{"[2001:db8::1]:65535", []byte{4, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff}},
	} {
		if got := targetAddr(nil, netip.MustParseAddrPort(c.dst)); !bytes.Equal(got, c.want) {
			t.Errorf("targetAddr(%s) = %v, want %v", c.dst, got, c.want)
		}
	}
}

// pair returns both ends of a loopback TCP connection.
func pair(t testing.TB) (client, server *net.TCPConn) {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.DialTCP("tcp", nil, ln.Addr().(*net.TCPAddr))
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.AcceptTCP()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c, s
}

// harness is a relay between a LAN client and a shadowsocks server made
// of outline-sdk's own reader and writer (interop with shadowsocks-libev
// is the lab test's).
type harness struct {
	client *net.TCPConn // the LAN client
	server *net.TCPConn // the peer's side of the box-to-peer connection
	key    *shadowsocks.EncryptionKey
	done   chan error
}

func newHarness(t testing.TB, dst netip.AddrPort, idle time.Duration) *harness {
	return newHarnessWait(t, dst, idle, 0, nil)
}

func newHarnessWait(t testing.TB, dst netip.AddrPort, idle, replyWait time.Duration, answered func()) *harness {
	t.Helper()
	key, err := shadowsocks.NewEncryptionKey("chacha20-ietf-poly1305", "not-a-secret")
	if err != nil {
		t.Fatal(err)
	}
	client, lan := pair(t)
	peer, server := pair(t)
	h := &harness{client: client, server: server, key: key, done: make(chan error, 1)}
	go func() { h.done <- relay(lan, peer, key, dst, idle, replyWait, answered) }()
	return h
}

// serverStream returns what the server decrypts and how it answers.
func (h *harness) serverStream() (io.Reader, io.Writer) {
	return shadowsocks.NewReader(h.server, h.key), shadowsocks.NewWriter(h.server, h.key)
}

func isReset(err error) bool { return errors.Is(err, syscall.ECONNRESET) }

// TestRelayHalfClose: the target address leads the stream; the client's
// FIN reaches the server, whose answer still reaches the client, then its
// FIN.
func TestRelayHalfClose(t *testing.T) {
	dst := netip.MustParseAddrPort("[2001:db8::80]:8080")
	h := newHarness(t, dst, time.Minute)
	if _, err := h.client.Write([]byte("request")); err != nil {
		t.Fatal(err)
	}
	h.client.CloseWrite()
	sr, sw := h.serverStream()
	got, err := io.ReadAll(sr)
	if err != nil {
		t.Fatalf("server: %v", err)
	}
	if want := append(targetAddr(nil, dst), "request"...); !bytes.Equal(got, want) {
		t.Fatalf("server read %q, want %q", got, want)
	}
	// The server answers after the client's half-close.
	if _, err := sw.Write([]byte("answer")); err != nil {
		t.Fatal(err)
	}
	h.server.CloseWrite()
	reply, err := io.ReadAll(h.client)
	if err != nil || string(reply) != "answer" {
		t.Fatalf("client read %q (%v), want \"answer\" then EOF", reply, err)
	}
	if err := <-h.done; err != nil {
		t.Errorf("relay: %v", err)
	}
}

// TestRelayServerSpeaksFirst: with a client that sends nothing, the
// target address still leaves (after clientDataWait), and the server's
// greeting reaches the client.
func TestRelayServerSpeaksFirst(t *testing.T) {
	dst := netip.MustParseAddrPort("198.51.100.80:25")
	h := newHarness(t, dst, time.Minute)
	sr, sw := h.serverStream()
	want := targetAddr(nil, dst)
	got := make([]byte, len(want))
	if _, err := io.ReadFull(sr, got); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("server read %v (%v), want the target address %v", got, err, want)
	}
	sw.Write([]byte("220 hello\n"))
	line := make([]byte, 10)
	if _, err := io.ReadFull(h.client, line); err != nil || string(line) != "220 hello\n" {
		t.Fatalf("client read %q (%v)", line, err)
	}
	h.client.Close()
	h.server.Close()
	<-h.done
}

// TestRelayResetsWithoutReply: a peer that closes without a byte (it
// could not reach the destination, or does not hold the key) resets the
// LAN connection.
func TestRelayResetsWithoutReply(t *testing.T) {
	dst := netip.MustParseAddrPort("198.51.100.80:7")
	h := newHarness(t, dst, time.Minute)
	h.client.Write([]byte("hello"))
	// The server reads everything, so that its close is a FIN, not a
	// reset for unread data.
	sr, _ := h.serverStream()
	if _, err := io.ReadFull(sr, make([]byte, len(targetAddr(nil, dst))+len("hello"))); err != nil {
		t.Fatal(err)
	}
	h.server.Close()
	if _, err := io.ReadAll(h.client); !isReset(err) {
		t.Errorf("client read ended with %v, want a reset", err)
	}
	if err := <-h.done; !errors.Is(err, errNoReply) {
		t.Errorf("relay: %v, want %v", err, errNoReply)
	}
}

// TestRelayResetsOnGarbage: a reply that does not authenticate (another
// key) resets the LAN connection.
func TestRelayResetsOnGarbage(t *testing.T) {
	h := newHarness(t, netip.MustParseAddrPort("198.51.100.80:7"), time.Minute)
	other, _ := shadowsocks.NewEncryptionKey("chacha20-ietf-poly1305", "another")
	shadowsocks.NewWriter(h.server, other).Write([]byte("hello from elsewhere"))
	if _, err := io.ReadAll(h.client); !isReset(err) {
		t.Errorf("client read ended with %v, want a reset", err)
	}
	if err := <-h.done; err == nil {
		t.Error("relay: no error")
	}
}

// TestRelayReplyWait: with replyWait, a peer that keeps the connection
// open but never answers (shadowsocks-libev given another key) gets the
// LAN connection reset; one that answers calls answered and is not reset.
func TestRelayReplyWait(t *testing.T) {
	const wait = 500 * time.Millisecond
	h := newHarnessWait(t, netip.MustParseAddrPort("198.51.100.80:7"), time.Minute, wait, func() { t.Error("answered without an answer") })
	h.client.Write([]byte("hello"))
	if _, err := io.ReadAll(h.client); !isReset(err) {
		t.Errorf("client read ended with %v, want a reset", err)
	}
	if err := <-h.done; !errors.Is(err, errNoReply) {
		t.Errorf("relay: %v, want %v", err, errNoReply)
	}

	answered := make(chan struct{})
	h = newHarnessWait(t, netip.MustParseAddrPort("198.51.100.80:7"), time.Minute, wait, func() { close(answered) })
	sr, sw := h.serverStream()
	go io.Copy(io.Discard, sr)
	sw.Write([]byte("hi"))
	<-answered
	// Silent now for several times replyWait, until the client closes:
	// the connection lives.
	buf := make([]byte, 2)
	io.ReadFull(h.client, buf)
	h.client.SetReadDeadline(time.Now().Add(4 * wait))
	if _, err := h.client.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("an answered connection, silent: read %v, want it still open", err)
	}
	h.client.Close()
	h.server.Close()
	<-h.done
}

// TestRelayIdle: a connection silent both ways is reset after idle,
// while one that carries bytes is not.
func TestRelayIdle(t *testing.T) {
	const idle = 2 * time.Second
	h := newHarness(t, netip.MustParseAddrPort("198.51.100.80:7"), idle)
	sr, sw := h.serverStream()
	// Bytes one way only, for several idle periods: it lives.
	buf := make([]byte, 64)
	for range 12 {
		sw.Write([]byte("tick"))
		if _, err := io.ReadFull(h.client, buf[:4]); err != nil {
			t.Fatalf("a busy connection broke: %v", err)
		}
		time.Sleep(idle / 10)
	}
	go io.Copy(io.Discard, sr)
	// Then silence: a reset.
	if _, err := io.ReadAll(h.client); !isReset(err) {
		t.Errorf("client read ended with %v, want a reset", err)
	}
	if err := <-h.done; !errors.Is(err, errIdle) {
		t.Errorf("relay: %v, want %v", err, errIdle)
	}
}

// BenchmarkRelay measures the copy loop in steady state, one way at a
// time, through loopback: bytes per second and allocations per 64 KiB
// (the goal is none).
func BenchmarkRelay(b *testing.B) {
	const chunk = 64 << 10
	for _, way := range []string{"up", "down"} {
		b.Run(way, func(b *testing.B) {
			h := newHarness(b, netip.MustParseAddrPort("198.51.100.80:7"), time.Minute)
			sr, sw := h.serverStream()
			var src io.Writer = h.client
			var dst io.Reader = sr
			if way == "down" {
				src, dst = sw, h.client
			}
			// The target address, out of the way.
			hdr := make([]byte, 7)
			io.ReadFull(sr, hdr)
			data := make([]byte, chunk)
			sink := make([]byte, chunk)
			errc := make(chan error, 1)
			b.SetBytes(chunk)
			b.ReportAllocs()
			b.ResetTimer()
			go func() {
				for range b.N {
					if _, err := src.Write(data); err != nil {
						errc <- err
						return
					}
				}
				errc <- nil
			}()
			for range b.N {
				if _, err := io.ReadFull(dst, sink); err != nil {
					b.Fatal(err)
				}
			}
			if err := <-errc; err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			h.client.Close()
			h.server.Close()
			<-h.done
		})
	}
}

// TestRelayResetsThePeer: a LAN client gone for good (its connection
// reset) while nothing from the peer is unread: the relay resets its
// connection to the peer too, over TCP and over Multipath TCP. Closed
// instead, a Multipath TCP socket sends a DATA_FIN and lingers without an
// owner, taking what the peer still sends, for net.mptcp.close_timeout.
func TestRelayResetsThePeer(t *testing.T) {
	for _, mptcp := range []bool{false, true} {
		name := "TCP"
		if mptcp {
			name = "MPTCP"
		}
		t.Run(name, func(t *testing.T) {
			key, err := shadowsocks.NewEncryptionKey("chacha20-ietf-poly1305", "not-a-secret")
			if err != nil {
				t.Fatal(err)
			}
			client, lan := pair(t)
			peer, server := mptcpPair(t, mptcp)
			done := make(chan error, 1)
			go func() {
				done <- relay(lan, peer, key, netip.MustParseAddrPort("198.51.100.80:80"), time.Minute, 0, nil)
			}()
			client.Write([]byte("GET"))
			sr := shadowsocks.NewReader(server, key)
			if _, err := io.ReadFull(sr, make([]byte, len(targetAddr(nil, netip.MustParseAddrPort("198.51.100.80:80")))+len("GET"))); err != nil {
				t.Fatal(err)
			}
			shadowsocks.NewWriter(server, key).Write([]byte("200"))
			if _, err := io.ReadFull(client, make([]byte, len("200"))); err != nil {
				t.Fatal(err)
			}
			// Nothing unread anywhere; the client goes.
			client.SetLinger(0)
			client.Close()
			if err := <-done; !isReset(err) {
				t.Errorf("relay: %v, want the client's reset", err)
			}
			server.SetReadDeadline(time.Now().Add(time.Minute))
			if b, err := io.ReadAll(server); !isReset(err) {
				t.Errorf("the peer read %d bytes then %v, want a reset", len(b), err)
			}
		})
	}
}

// mptcpPair returns both ends of a loopback connection, Multipath TCP
// if mptcp (the kernel's MPTCP enabled, as braid's aggregation needs).
func mptcpPair(t *testing.T, mptcp bool) (client, server *net.TCPConn) {
	t.Helper()
	if !mptcp {
		return pair(t)
	}
	var lc net.ListenConfig
	lc.SetMultipathTCP(true)
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var d net.Dialer
	d.SetMultipathTCP(true)
	c, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	if ok, _ := c.(*net.TCPConn).MultipathTCP(); !ok {
		t.Fatal("no Multipath TCP on loopback (net.mptcp.enabled=0?)")
	}
	return c.(*net.TCPConn), s.(*net.TCPConn)
}
