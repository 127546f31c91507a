package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Jigsaw-Code/outline-sdk/transport"
	"github.com/Jigsaw-Code/outline-sdk/transport/shadowsocks"

	"github.com/braid-router/braid/internal/nstest"
)

// peerNet is three namespaces: a client (ss-local), braid's peer, and a
// target server the peer reaches on another link.
//
//	client (c0) 10.77.1.2, fd77:1::2 ── (p0) peer (p1) 10.77.2.1, fd77:2::1 ── (t0) target 10.77.2.2, fd77:2::2
type peerNet struct {
	t                    *testing.T
	client, peer, target string
}

var (
	peerV4      = netip.MustParseAddr("10.77.1.1")
	peerV6      = netip.MustParseAddr("fd77:1::1")
	peerFarV4   = netip.MustParseAddr("10.77.2.1")
	peerFarV6   = netip.MustParseAddr("fd77:2::1")
	targetV4    = netip.MustParseAddr("10.77.2.2")
	targetV6    = netip.MustParseAddr("fd77:2::2")
	targetPort  = uint16(8080)
	peerPort    = uint16(65101)
	peerAllowed = uint16(5353) // in allowLocal
	peerLocal   = uint16(5354) // not
)

func newPeerNet(t *testing.T) *peerNet {
	t.Helper()
	n := &peerNet{t: t, client: nstest.New(t), peer: nstest.New(t), target: nstest.New(t)}
	nstest.Run(t, "ip", "-n", n.client, "link", "add", "c0", "type", "veth", "peer", "name", "p0", "netns", n.peer)
	nstest.Run(t, "ip", "-n", n.peer, "link", "add", "p1", "type", "veth", "peer", "name", "t0", "netns", n.target)
	addrsUp(t, []nsAddr{
		{n.client, "c0", "10.77.1.2/24"}, {n.client, "c0", "fd77:1::2/64"},
		{n.peer, "p0", "10.77.1.1/24"}, {n.peer, "p0", "fd77:1::1/64"},
		{n.peer, "p1", "10.77.2.1/24"}, {n.peer, "p1", "fd77:2::1/64"},
		{n.target, "t0", "10.77.2.2/24"}, {n.target, "t0", "fd77:2::2/64"},
	}...)
	return n
}

// serve runs, in namespace ns, a TCP server on addr that reads what a
// client sends up to a newline or its end of stream (a half-close), then
// answers "NAME from SOURCE: LINE" and closes.
func (n *peerNet) serve(ns, name string, addr netip.AddrPort) {
	n.t.Helper()
	nstest.ServeTCP(n.t, ns, addr.String(), func(c net.Conn) {
		c.SetDeadline(time.Now().Add(time.Minute))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return
		}
		src := netip.MustParseAddrPort(c.RemoteAddr().String()).Addr().Unmap()
		fmt.Fprintf(c, "%s from %s: %s", name, src, strings.TrimSuffix(line, "\n"))
	})
}

// startPeer runs `braid run -f peer.yaml` in the peer namespace, with
// more arguments to braid run if given, and waits for its session to run.
func (n *peerNet) startPeer(cipher, key string, args ...string) *daemon {
	n.t.Helper()
	dir := n.t.TempDir()
	keyFile := filepath.Join(dir, "peer.key")
	if err := os.WriteFile(keyFile, []byte(key+"\n"), 0o600); err != nil {
		n.t.Fatal(err)
	}
	spec := filepath.Join(dir, "peer.yaml")
	src := fmt.Sprintf(`apiVersion: braid/v1alpha1
kind: Peer
metadata: {name: vps}
spec:
  listen: "[::]:%d"
  cipher: %s
  key: {file: %s}
  allowLocal: ["127.0.0.1:%d"]
`, peerPort, cipher, keyFile, peerAllowed)
	if err := os.WriteFile(spec, []byte(src), 0o644); err != nil {
		n.t.Fatal(err)
	}
	d := runPeer(nsBox(n.t, n.peer), append([]string{"-f", spec}, args...)...)
	if logs := d.logs.String(); strings.Contains(logs, key) {
		n.t.Fatalf("the key shows in braid's logs:\n%s", logs)
	}
	return d
}

// socks asks the SOCKS5 proxy on 127.0.0.1:port of the client namespace
// for dst, sends line, and returns everything that comes back after the
// proxy's reply, until the end of the stream, or, with wait set, for at
// most wait (ss-local keeps a connection the peer gives nothing to open
// until its own timeout).
func (n *peerNet) socks(port uint16, dst netip.AddrPort, line string, wait time.Duration) string {
	n.t.Helper()
	var c net.Conn
	nstest.Do(n.t, n.client, func() (err error) {
		c, err = net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		return err
	})
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	req := []byte{5, 1, 0, 5, 1, 0}
	if dst.Addr().Is4() {
		req = append(req, 1)
	} else {
		req = append(req, 4)
	}
	req = append(req, dst.Addr().AsSlice()...)
	req = binary.BigEndian.AppendUint16(req, dst.Port())
	if _, err := c.Write(req); err != nil {
		n.t.Fatal(err)
	}
	// The method choice (2 octets), then a reply (IPv4 bound address: 10).
	head := make([]byte, 2+4)
	if _, err := io.ReadFull(c, head); err != nil {
		n.t.Fatalf("SOCKS5 reply: %v", err)
	}
	if head[1] != 0 || head[3] != 0 {
		n.t.Fatalf("SOCKS5 refused: %x", head)
	}
	skip := map[byte]int{1: 4 + 2, 4: 16 + 2}[head[5]]
	if _, err := io.ReadFull(c, make([]byte, skip)); err != nil {
		n.t.Fatalf("SOCKS5 reply: %v", err)
	}
	// ss-local drops what comes with the request: the line follows the
	// reply.
	if _, err := io.WriteString(c, line); err != nil {
		n.t.Fatal(err)
	}
	if wait > 0 {
		c.SetReadDeadline(time.Now().Add(wait))
	}
	b, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() && wait == 0 {
		n.t.Fatalf("the stream to %s never ended (got %q)", dst, b)
	}
	return string(b)
}

// shadowsocks-libev's ss-local, as a box would be, against braid's peer
// with each cipher: IPv4 and IPv6 destinations reached in their family
// (the target sees the peer's address), over the peer's IPv4 and IPv6
// addresses; a local destination in allowLocal is reached, others (the
// peer's loopback, its own addresses) get nothing; a client with a wrong
// key gets nothing.
func TestPeerServesSSLocal(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireBinary(t, "ss-local")
	n := newPeerNet(t)
	for _, a := range []netip.Addr{targetV4, targetV6} {
		n.serve(n.target, "target", netip.AddrPortFrom(a, targetPort))
	}
	n.serve(n.peer, "allowed", netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), peerAllowed))
	n.serve(n.peer, "local", netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), peerLocal))
	n.serve(n.peer, "own", netip.AddrPortFrom(peerFarV4, peerLocal))

	n.perCipher(t, func(t *testing.T, i int, cipher, key string) {
		if got := nstest.In(t, n.peer, "ip", "mptcp", "limits", "show"); !strings.Contains(got, "subflows 8") {
			t.Fatalf("the peer's MPTCP limits: %s, want subflows 8", got)
		}
		syns := mpCapableSYNs(t, n.peer)
		port4, port6, bad := uint16(1080+10*i), uint16(1081+10*i), uint16(1082+10*i)
		n.ssClient("ss-local", peerV4, port4, cipher, key, "-b", "127.0.0.1")
		n.ssClient("ss-local", peerV6, port6, cipher, key, "-b", "127.0.0.1")
		n.ssClient("ss-local", peerV4, bad, cipher, "not the key", "-b", "127.0.0.1")
		for _, port := range []uint16{port4, port6} {
			for _, c := range []struct {
				dst  netip.AddrPort
				want string
			}{
				{netip.AddrPortFrom(targetV4, targetPort), "target from " + peerFarV4.String() + ": hello\n"},
				{netip.AddrPortFrom(targetV6, targetPort), "target from " + peerFarV6.String() + ": hello\n"},
				{netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), peerAllowed), "allowed from 127.0.0.1: hello\n"},
				{netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), peerLocal), ""},
				{netip.AddrPortFrom(peerFarV4, peerLocal), ""},
			} {
				got := n.socks(port, c.dst, "hello\n", 0)
				// The target's answer has no newline; the test's line has.
				if want := strings.TrimSuffix(c.want, "\n"); got != want {
					t.Errorf("through ss-local :%d to %s: got %q, want %q", port, c.dst, got, want)
				}
			}
		}
		// (A wrong key gives ss-local nothing it can decrypt: that no
		// byte at all is written is asserted on raw connections by
		// sessions/peer's tests.)
		if got := n.socks(bad, netip.AddrPortFrom(targetV4, targetPort), "hello\n", 3*time.Second); got != "" {
			t.Errorf("with a wrong key: got %q, want nothing", got)
		}
		// Half-close both ways (ss-local closes both directions at its
		// client's end of stream): the target answers only once the
		// client's half-close reaches it, and the answer still
		// comes back.
		for _, dst := range []netip.AddrPort{netip.AddrPortFrom(targetV4, targetPort), netip.AddrPortFrom(targetV6, targetPort)} {
			got := n.halfClose(cipher, key, netip.AddrPortFrom(peerV6, peerPort), dst, "half")
			if want := "target from " + map[bool]string{true: peerFarV4.String(), false: peerFarV6.String()}[dst.Addr().Is4()] + ": half"; got != want {
				t.Errorf("half-closed stream to %s: got %q, want %q", dst, got, want)
			}
		}
		// ss-local's connections were MPTCP, by the peer kernel's own
		// count of MP_CAPABLE SYNs it received.
		if got := mpCapableSYNs(t, n.peer) - syns; got < 11 {
			t.Errorf("the peer's kernel received %d MP_CAPABLE SYNs, want one per connection (11 or more)", got)
		}
	})
}

// mpCapableSYNs is the kernel's count of MPTCP connection requests ns
// received (MPTcpExtMPCapableSYNRX).
func mpCapableSYNs(t *testing.T, ns string) int {
	t.Helper()
	out := nstest.In(t, ns, "nstat", "-az", "MPTcpExtMPCapableSYNRX")
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "MPTcpExtMPCapableSYNRX" {
			var v int
			fmt.Sscan(f[1], &v)
			return v
		}
	}
	t.Fatalf("no MPTcpExtMPCapableSYNRX in nstat's output:\n%s", out)
	return 0
}

// halfClose is a shadowsocks client (outline-sdk's, over MPTCP) in the
// client namespace: it asks peer for dst, sends data, closes its sending
// half, and returns what comes back until the end of the stream.
func (n *peerNet) halfClose(cipher, password string, peer, dst netip.AddrPort, data string) string {
	n.t.Helper()
	key, err := shadowsocks.NewEncryptionKey(cipher, password)
	if err != nil {
		n.t.Fatal(err)
	}
	ep := &transport.TCPEndpoint{Address: peer.String()}
	ep.Dialer.SetMultipathTCP(true)
	sd, err := shadowsocks.NewStreamDialer(ep, key)
	if err != nil {
		n.t.Fatal(err)
	}
	var c transport.StreamConn
	nstest.Do(n.t, n.client, func() (err error) {
		c, err = sd.DialStream(context.Background(), dst.String())
		return err
	})
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	if _, err := io.WriteString(c, data); err != nil {
		n.t.Fatal(err)
	}
	if err := c.CloseWrite(); err != nil {
		n.t.Fatal(err)
	}
	b, err := io.ReadAll(c)
	if err != nil {
		n.t.Fatalf("half-closed stream to %s: %v (got %q)", dst, err, b)
	}
	return string(b)
}
