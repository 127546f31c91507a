package main

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/Jigsaw-Code/outline-sdk/transport/shadowsocks"
	dto "github.com/prometheus/client_model/go"

	"github.com/braid-router/braid/internal/nstest"
	"github.com/braid-router/braid/sessions/peer/socksaddr"
)

// peerMetrics is where braid's peer serves its metrics, in its namespace.
const peerMetrics = "127.0.0.1:9464"

// ssStream is what a shadowsocks client sends for dst and payload, the
// stream sealed with cipher and password.
func ssStream(t *testing.T, cipher, password string, dst netip.AddrPort, payload string) []byte {
	t.Helper()
	key, err := shadowsocks.NewEncryptionKey(cipher, password)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	w := shadowsocks.NewWriter(&b, key)
	if _, err := w.Write(append(socksaddr.Append(nil, socksaddr.Addr{IP: dst.Addr(), Port: dst.Port()}), payload...)); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// ssDatagram is a shadowsocks UDP relay datagram for dst and payload.
func ssDatagram(t *testing.T, cipher, password string, dst netip.AddrPort, payload string) []byte {
	t.Helper()
	key, err := shadowsocks.NewEncryptionKey(cipher, password)
	if err != nil {
		t.Fatal(err)
	}
	plain := append(socksaddr.Append(nil, socksaddr.Addr{IP: dst.Addr(), Port: dst.Port()}), payload...)
	pkt, err := shadowsocks.Pack(make([]byte, key.SaltSize()+len(plain)+key.TagSize()), plain, key)
	if err != nil {
		t.Fatal(err)
	}
	return pkt
}

// countAccepts runs, in namespace ns, a TCP server on addr that answers a
// connection's first line with "target from SOURCE", and counts the
// connections it accepted.
func (n *peerNet) countAccepts(ns string, addr netip.AddrPort) *atomic.Int64 {
	n.t.Helper()
	var count atomic.Int64
	nstest.ServeTCP(n.t, ns, addr.String(), func(c net.Conn) {
		count.Add(1)
		c.SetDeadline(time.Now().Add(time.Minute))
		if _, err := c.Read(make([]byte, 100)); err != nil {
			return
		}
		fmt.Fprintf(c, "target from %s", netip.MustParseAddrPort(c.RemoteAddr().String()).Addr().Unmap())
	})
	return &count
}

// exchange connects from the client namespace to the peer, sends b, half
// closes, and returns everything that comes back until the peer closes,
// decrypted with cipher and password when it is not empty.
func (n *peerNet) exchange(b []byte, cipher, password string) string {
	n.t.Helper()
	c := n.dialClient(netip.AddrPortFrom(peerV4, peerPort).String())
	defer c.Close()
	if _, err := c.Write(b); err != nil {
		n.t.Fatal(err)
	}
	c.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		n.t.Fatalf("the peer never closed the connection (got %q)", got)
	}
	if len(got) == 0 {
		return ""
	}
	key, err := shadowsocks.NewEncryptionKey(cipher, password)
	if err != nil {
		n.t.Fatal(err)
	}
	plain, err := io.ReadAll(shadowsocks.NewReader(bytes.NewReader(got), key))
	if err != nil {
		n.t.Fatalf("the peer's %d bytes do not decrypt: %v", len(got), err)
	}
	return string(plain)
}

// peerUntil scrapes braid's peer metrics until cond holds of them.
func peerUntil(t *testing.T, d *daemon, what string, cond func(fams map[string]*dto.MetricFamily) bool) map[string]*dto.MetricFamily {
	t.Helper()
	var fams map[string]*dto.MetricFamily
	var err error
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if fams, err = d.b.scrape(peerMetrics); err == nil && cond(fams) {
			return fams
		}
	}
	t.Fatalf("%s: never (%v); the peer's metrics: %s", what, err, peerMetricsOf(fams))
	return nil
}

// peerMetricsOf is the peer's own metrics in fams, for a message.
func peerMetricsOf(fams map[string]*dto.MetricFamily) string {
	var b strings.Builder
	for _, name := range []string{"braid_peer_rejected_connections_total", "braid_peer_held", "go_goroutines", "process_open_fds"} {
		for _, m := range fams[name].GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			fmt.Fprintf(&b, "\n%s{%s} %v", name, strings.Join(labels, ","), m.GetCounter().GetValue()+m.GetGauge().GetValue())
		}
	}
	return b.String()
}

func rejected(fams map[string]*dto.MetricFamily, transport, reason string) float64 {
	v, _ := metricValue(fams, "braid_peer_rejected_connections_total", "transport", transport, "reason", reason)
	return v
}

// braid's peer is not an open relay: a wrong key, random bytes and a
// replayed first packet, over TCP and as UDP datagrams, reach no one and
// get no byte, and are counted by reason in braid's metrics; a local
// destination outside allowLocal (the peer's loopback, its own address)
// gets nothing over UDP, allowLocal's is reached. (The TCP equivalents of
// the local destinations are TestPeerServesSSLocal's.)
func TestPeerIsNotAnOpenRelay(t *testing.T) {
	nstest.RequireRoot(t)
	n := newPeerNet(t)
	const cipher, key = "aes-256-gcm", "the peer's key"
	target := netip.AddrPortFrom(targetV4, 9090)
	accepts := n.countAccepts(n.target, target)
	whoami := n.serveUDPWhoami(n.target, target)
	loopback := netip.MustParseAddr("127.0.0.1")
	allowed := n.serveUDPWhoami(n.peer, netip.AddrPortFrom(loopback, peerAllowed))
	local := n.serveUDPWhoami(n.peer, netip.AddrPortFrom(loopback, peerLocal))
	own := n.serveUDPWhoami(n.peer, netip.AddrPortFrom(peerFarV4, peerLocal))
	d := n.startPeer(cipher, key, "--metrics-listen", peerMetrics)
	defer d.stop(syscall.SIGTERM)

	garbage := make([]byte, 300)
	rand.Read(garbage)
	first := ssStream(t, cipher, key, target, "hello\n")
	for _, c := range []struct {
		what string
		send []byte
		want string
	}{
		{"a wrong key", ssStream(t, cipher, "not the key", target, "hello\n"), ""},
		{"random bytes", garbage, ""},
		{"a truncated first packet", first[:len(first)-1], ""},
		{"the first packet", first, "target from " + peerFarV4.String()},
		{"the first packet replayed", first, ""},
	} {
		if got := n.exchange(c.send, cipher, key); got != c.want {
			t.Errorf("TCP, %s: got %q, want %q", c.what, got, c.want)
		}
	}
	peerUntil(t, d, "the TCP rejections counted", func(fams map[string]*dto.MetricFamily) bool {
		return rejected(fams, "tcp", "auth") == 2 && rejected(fams, "tcp", "truncated") == 1 && rejected(fams, "tcp", "replay") == 1
	})
	if got := accepts.Load(); got != 1 {
		t.Errorf("the target accepted %d connections, want only the first packet's", got)
	}
	// A relayed connection shows in braid_peer_held while it is open.
	open := n.dialClient(netip.AddrPortFrom(peerV4, peerPort).String())
	if _, err := open.Write(ssStream(t, cipher, key, target, "")); err != nil {
		t.Fatal(err)
	}
	peerUntil(t, d, "the open connection held as relayed", func(fams map[string]*dto.MetricFamily) bool {
		v, _ := metricValue(fams, "braid_peer_held", "what", "relayed")
		return v == 1 && accepts.Load() == 2
	})
	open.Close()

	// UDP, from one client socket.
	var c *net.UDPConn
	nstest.Do(t, n.client, func() (err error) {
		c, err = net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(peerV4, peerPort)))
		return err
	})
	defer c.Close()
	good := ssDatagram(t, cipher, key, target, "one")
	ask := func(pkt []byte) string {
		t.Helper()
		if _, err := c.Write(pkt); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		buf := make([]byte, 2048)
		k, err := c.Read(buf)
		if err != nil {
			t.Fatalf("no reply: %v", err)
		}
		k2, err := shadowsocks.NewEncryptionKey(cipher, key)
		if err != nil {
			t.Fatal(err)
		}
		plain, err := shadowsocks.Unpack(nil, buf[:k], k2)
		if err != nil {
			t.Fatalf("the peer's reply does not open: %v", err)
		}
		_, m, err := socksaddr.Parse(plain)
		if err != nil {
			t.Fatal(err)
		}
		return string(plain[m:])
	}
	if got := ask(good); got != peerFarV4.String() {
		t.Fatalf("UDP through the peer: the whoami saw %q, want %s", got, peerFarV4)
	}
	for _, pkt := range [][]byte{
		ssDatagram(t, cipher, "not the key", target, "wrong key"),
		garbage,
		good[:20],
		good,
		ssDatagram(t, cipher, key, netip.AddrPortFrom(loopback, peerLocal), "loopback"),
		ssDatagram(t, cipher, key, netip.AddrPortFrom(peerFarV4, peerLocal), "own"),
	} {
		if _, err := c.Write(pkt); err != nil {
			t.Fatal(err)
		}
	}
	peerUntil(t, d, "the UDP rejections counted", func(fams map[string]*dto.MetricFamily) bool {
		return rejected(fams, "udp", "auth") == 2 && rejected(fams, "udp", "truncated") == 1 &&
			rejected(fams, "udp", "replay") == 1 && rejected(fams, "udp", "local") == 2
	})
	if got := ask(ssDatagram(t, cipher, key, netip.AddrPortFrom(loopback, peerAllowed), "allowed")); got != "127.0.0.1" {
		t.Errorf("UDP to allowLocal's %s:%d: got %q", loopback, peerAllowed, got)
	}
	if got := whoami.received(); len(got) != 1 || got[0] != peerFarV4.String()+" one" {
		t.Errorf("the UDP whoami received %q, want only the first datagram", got)
	}
	if got := append(local.received(), own.received()...); len(got) != 0 {
		t.Errorf("local destinations outside allowLocal received %q", got)
	}
	if got := allowed.received(); len(got) != 1 {
		t.Errorf("allowLocal's destination received %q, want one datagram", got)
	}
}

// A flood of bad handshakes, 3,000 connections from 240 sources, each
// sending random bytes and staying open: the peer writes no byte to any,
// holds at most its cap of them (1,024 of all sources, 8 per source),
// closes the rest at once, and its goroutines stay bounded by that cap,
// by its own metrics; once the clients close, it holds none.
func TestPeerBoundedUnderAFlood(t *testing.T) {
	nstest.RequireRoot(t)
	n := newPeerNet(t)
	const cipher, key = "chacha20-ietf-poly1305", "the peer's key"
	const sources, flood, capAll, capSource = 240, 3000, 1024, 8
	var batch strings.Builder
	var srcs []netip.Addr
	for i := range sources {
		a := netip.AddrFrom4([4]byte{10, 77, 1, byte(10 + i)})
		srcs = append(srcs, a)
		fmt.Fprintf(&batch, "addr add %s/24 dev c0\n", a)
	}
	cmd := exec.Command("ip", "-n", n.client, "-batch", "-")
	cmd.Stdin = strings.NewReader(batch.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ip -batch: %v\n%s", err, out)
	}
	d := n.startPeer(cipher, key, "--metrics-listen", peerMetrics)
	defer d.stop(syscall.SIGTERM)
	before := peerUntil(t, d, "the peer's metrics", func(fams map[string]*dto.MetricFamily) bool {
		_, ok := metricValue(fams, "braid_peer_held", "what", "rejected")
		return ok
	})
	goroutines := mustValue(t, before, "go_goroutines")

	var conns []*net.TCPConn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	garbage := make([]byte, 200)
	rand.Read(garbage)
	nstest.Do(t, n.client, func() error {
		for i := range flood {
			dl := net.Dialer{LocalAddr: &net.TCPAddr{IP: srcs[i%sources].AsSlice()}, Timeout: 30 * time.Second}
			c, err := dl.Dial("tcp", netip.AddrPortFrom(peerV4, peerPort).String())
			if err != nil {
				return fmt.Errorf("connection %d: %w", i, err)
			}
			conns = append(conns, c.(*net.TCPConn))
			if _, err := c.Write(garbage); err != nil {
				return fmt.Errorf("connection %d: %w", i, err)
			}
		}
		return nil
	})
	fams := peerUntil(t, d, "the flood counted", func(fams map[string]*dto.MetricFamily) bool {
		return rejected(fams, "tcp", "auth") == flood
	})
	held := mustValue(t, fams, "braid_peer_held", "what", "rejected")
	if held > capAll {
		t.Errorf("the peer holds %v rejected connections, more than its cap of %d", held, capAll)
	}
	if capped := rejected(fams, "tcp", "capped"); capped < flood-capAll {
		t.Errorf("%v rejected connections closed at once, want at least %d", capped, flood-capAll)
	}
	if g := mustValue(t, fams, "go_goroutines"); g > goroutines+capAll+64 {
		t.Errorf("%v goroutines under the flood (%v before): more than one per held connection", g, goroutines)
	}
	t.Logf("under the flood: %s", peerMetricsOf(fams))

	// No byte to any of them: each ends with nothing read, the held ones
	// closed once their client closes, the capped ones closed at once
	// (reset: the peer closed them with the client's bytes unread).
	var wg sync.WaitGroup
	var mu sync.Mutex
	var wrote []string
	for _, c := range conns {
		c.CloseWrite()
		wg.Go(func() {
			c.SetReadDeadline(time.Now().Add(2 * time.Minute))
			b, err := io.ReadAll(c)
			if len(b) > 0 || err != nil && !errors.Is(err, syscall.ECONNRESET) {
				mu.Lock()
				wrote = append(wrote, fmt.Sprintf("%s: %d bytes, %v", c.LocalAddr(), len(b), err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(wrote) > 0 {
		t.Errorf("%d flood connections did not end with no byte, e.g. %s", len(wrote), wrote[0])
	}
	peerUntil(t, d, "the rejected connections let go", func(fams map[string]*dto.MetricFamily) bool {
		v, _ := metricValue(fams, "braid_peer_held", "what", "rejected")
		return v == 0
	})
	// Still serving: a client with the key gets through.
	target := netip.AddrPortFrom(targetV4, 9090)
	n.countAccepts(n.target, target)
	if got := n.exchange(ssStream(t, cipher, key, target, "hello\n"), cipher, key); got != "target from "+peerFarV4.String() {
		t.Errorf("after the flood: got %q", got)
	}
}

// Clients with the key opening more UDP associations than the peer holds
// (1,024): the datagrams past the cap reach no one and are counted, and
// braid_peer_held{what="associations"} stays at the cap.
func TestPeerUDPAssociationsBounded(t *testing.T) {
	nstest.RequireRoot(t)
	n := newPeerNet(t)
	const cipher, key = "aes-128-gcm", "the peer's key"
	const clients, capAll = 1100, 1024
	target := netip.AddrPortFrom(targetV4, 9090)
	whoami := n.serveUDPWhoami(n.target, target)
	d := n.startPeer(cipher, key, "--metrics-listen", peerMetrics)
	defer d.stop(syscall.SIGTERM)
	var conns []*net.UDPConn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	nstest.Do(t, n.client, func() error {
		for i := range clients {
			c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(peerV4, peerPort)))
			if err != nil {
				return err
			}
			conns = append(conns, c)
			if _, err := c.Write(ssDatagram(t, cipher, key, target, fmt.Sprint(i))); err != nil {
				return err
			}
			// Sent in steps the peer's socket buffer holds: a datagram
			// lost there would leave the counts short.
			if i%100 == 99 {
				peerUntil(t, d, "the datagrams so far relayed or refused", func(fams map[string]*dto.MetricFamily) bool {
					held, _ := metricValue(fams, "braid_peer_held", "what", "associations")
					return int(held+rejected(fams, "udp", "capped")) == i+1
				})
			}
		}
		return nil
	})
	fams := peerUntil(t, d, "every datagram relayed or refused", func(fams map[string]*dto.MetricFamily) bool {
		held, _ := metricValue(fams, "braid_peer_held", "what", "associations")
		return held+rejected(fams, "udp", "capped") == clients
	})
	if held := mustValue(t, fams, "braid_peer_held", "what", "associations"); held != capAll {
		t.Errorf("the peer holds %v associations, want its cap, %d", held, capAll)
	}
	for deadline := time.Now().Add(60 * time.Second); len(whoami.received()) < capAll && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
	}
	if got := len(whoami.received()); got != capAll {
		t.Errorf("the whoami received %d datagrams, want one per association held (%d)", got, capAll)
	}
}
