package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/braid-router/braid/internal/nstest"
)

// The client's second path to the peer (c1 ── p2), for a second MPTCP
// subflow:
//
//	client (c1) 10.77.3.2, fd77:3::2 ── (p2) peer 10.77.3.1, fd77:3::1
var (
	clientV4, clientV6           = netip.MustParseAddr("10.77.1.2"), netip.MustParseAddr("fd77:1::2")
	clientPath2V4, clientPath2V6 = netip.MustParseAddr("10.77.3.2"), netip.MustParseAddr("fd77:3::2")
	holdPort                     = uint16(8082) // TCP: the hold server; UDP: the whoami
	redirPort                    = uint16(8083) // what ss-redir's REDIRECT rules catch
)

// addSecondPath links the client to the peer a second time and makes the
// client a Multipath TCP host as a box is: a subflow endpoint on the
// second link's addresses (bound to c1), source routing for them in a
// table of their own (so the first subflow still leaves by c0), and
// the limit of one more subflow per connection. The client also routes
// the target's link through the peer's first address, for ss-redir's
// redirected connections (the peer does not forward: what reaches the
// target comes from the peer's own socket).
func (n *peerNet) addSecondPath() {
	n.t.Helper()
	nstest.Run(n.t, "ip", "-n", n.client, "link", "add", "c1", "type", "veth", "peer", "name", "p2", "netns", n.peer)
	addrsUp(n.t, []nsAddr{
		{n.client, "c1", "10.77.3.2/24"}, {n.client, "c1", "fd77:3::2/64"},
		{n.peer, "p2", "10.77.3.1/24"}, {n.peer, "p2", "fd77:3::1/64"},
	}...)
	for _, cmd := range [][]string{
		{"-4", "rule", "add", "from", "10.77.3.2", "table", "100"},
		{"-4", "route", "add", "10.77.1.0/24", "via", "10.77.3.1", "dev", "c1", "table", "100"},
		{"-6", "rule", "add", "from", "fd77:3::2", "table", "100"},
		{"-6", "route", "add", "fd77:1::/64", "via", "fd77:3::1", "dev", "c1", "table", "100"},
		{"-4", "route", "add", "10.77.2.0/24", "via", "10.77.1.1"},
		{"-6", "route", "add", "fd77:2::/64", "via", "fd77:1::1"},
		// ss-redir -u's datagrams (marked by its test's nftables),
		// delivered locally for TPROXY.
		{"-4", "rule", "add", "fwmark", "0x77", "table", "101"},
		{"-4", "route", "add", "local", "0.0.0.0/0", "dev", "lo", "table", "101"},
		{"-6", "rule", "add", "fwmark", "0x77", "table", "101"},
		{"-6", "route", "add", "local", "::/0", "dev", "lo", "table", "101"},
		{"mptcp", "limits", "set", "subflows", "2", "add_addr_accepted", "0"},
		{"mptcp", "endpoint", "add", "10.77.3.2", "dev", "c1", "subflow"},
		{"mptcp", "endpoint", "add", "fd77:3::2", "dev", "c1", "subflow"},
	} {
		nstest.Run(n.t, "ip", append([]string{"-n", n.client}, cmd...)...)
	}
	nstest.In(n.t, n.client, "sysctl", "-qw", "net.mptcp.enabled=1")
}

// serveHold runs, in the target namespace, a TCP server on addr that
// answers a client's first line with "target from SOURCE: LINE" and then
// echoes what it sends until its end of stream, so that the connection
// stays open while the test looks at it.
func (n *peerNet) serveHold(addr netip.AddrPort) {
	n.t.Helper()
	nstest.ServeTCP(n.t, n.target, addr.String(), func(c net.Conn) {
		c.SetDeadline(time.Now().Add(2 * time.Minute))
		r := bufio.NewReader(c)
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		src := netip.MustParseAddrPort(c.RemoteAddr().String()).Addr().Unmap()
		fmt.Fprintf(c, "target from %s: %s", src, line)
		io.Copy(c, r)
	})
}

// udpWhoami is a UDP server (in the target namespace, or another) that
// answers each datagram with the address it came from, and records them.
type udpWhoami struct {
	addr netip.AddrPort
	mu   sync.Mutex
	got  []string // "SOURCE PAYLOAD"
}

func (n *peerNet) serveUDPWhoami(ns string, addr netip.AddrPort) *udpWhoami {
	n.t.Helper()
	w := &udpWhoami{addr: addr}
	var c *net.UDPConn
	nstest.Do(n.t, ns, func() (err error) {
		c, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
		return err
	})
	nstest.ServeUDP(n.t, c, func(payload []byte, from netip.AddrPort) {
		src := from.Addr().Unmap().String()
		w.mu.Lock()
		w.got = append(w.got, src+" "+string(payload))
		w.mu.Unlock()
		c.WriteToUDPAddrPort([]byte(src), from)
	})
	return w
}

func (w *udpWhoami) received() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.got)
}

// ssClient runs one of shadowsocks-libev's clients (ss-local, ss-redir,
// ss-tunnel) in the client namespace, with Multipath TCP, against the
// peer at server, and waits until it listens on 127.0.0.1:port (TCP; -U
// runs a UDP-only client, which is not waited for).
func (n *peerNet) ssClient(name string, server netip.Addr, port uint16, cipher, key string, args ...string) {
	n.t.Helper()
	bin := nstest.RequireBinary(n.t, name)
	args = append([]string{"netns", "exec", n.client, bin, "-s", server.String(), "-p", fmt.Sprint(peerPort),
		"-l", fmt.Sprint(port), "-k", key, "-m", cipher, "--mptcp", "-t", "60"}, args...)
	cmd := exec.Command("ip", args...)
	logs := &nstest.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	t := n.t
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if t.Failed() {
			t.Logf("%s logs:\n%s", name, logs.String())
		}
	})
	if slices.Contains(args, "-U") {
		return
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var c net.Conn
		err := errors.New("not yet")
		nstest.Do(n.t, n.client, func() error {
			c, err = net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
			return nil
		})
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("%s never listened on %d: %v\n%s", name, port, err, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// dialClient connects from the client namespace to addr.
func (n *peerNet) dialClient(addr string) net.Conn {
	n.t.Helper()
	var c net.Conn
	nstest.Do(n.t, n.client, func() (err error) {
		c, err = net.DialTimeout("tcp", addr, 10*time.Second)
		return err
	})
	c.SetDeadline(time.Now().Add(time.Minute))
	return c
}

// socksConn asks the SOCKS5 proxy on 127.0.0.1:port of the client
// namespace for dst and returns the connection once the proxy has
// answered.
func (n *peerNet) socksConn(port uint16, dst netip.AddrPort) net.Conn {
	n.t.Helper()
	c := n.dialClient(fmt.Sprintf("127.0.0.1:%d", port))
	req := []byte{5, 1, 0, 5, 1, 0, 1}
	if dst.Addr().Is6() {
		req[6] = 4
	}
	req = append(req, dst.Addr().AsSlice()...)
	req = append(req, byte(dst.Port()>>8), byte(dst.Port()))
	if _, err := c.Write(req); err != nil {
		n.t.Fatal(err)
	}
	head := make([]byte, 2+4)
	if _, err := io.ReadFull(c, head); err != nil || head[1] != 0 || head[3] != 0 {
		n.t.Fatalf("SOCKS5 reply %x: %v", head, err)
	}
	if _, err := io.ReadFull(c, make([]byte, map[byte]int{1: 4 + 2, 4: 16 + 2}[head[5]])); err != nil {
		n.t.Fatalf("SOCKS5 reply: %v", err)
	}
	return c
}

// throughPeer checks a connection the client opened through one of
// shadowsocks-libev's clients: the hold server answers from the peer's
// address on its link (want), and, while the connection is open, the
// client's connection to the peer at server is MPTCP with a subflow from
// each of the client's two paths, as ss(8) lists them in the client's
// namespace; an echo after that still comes back.
func (n *peerNet) throughPeer(what string, c net.Conn, server, want netip.Addr) {
	n.t.Helper()
	defer c.Close()
	r := bufio.NewReader(c)
	if _, err := io.WriteString(c, "hello\n"); err != nil {
		n.t.Fatalf("%s: %v", what, err)
	}
	line, err := r.ReadString('\n')
	if wantLine := fmt.Sprintf("target from %s: hello\n", want); line != wantLine {
		n.t.Fatalf("%s: the hold server answered %q (%v), want %q", what, line, err, wantLine)
	}
	wantLocals := []string{clientV4.String(), clientPath2V4.String()}
	if server.Is6() {
		wantLocals = []string{clientV6.String(), clientPath2V6.String()}
	}
	var locals []string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if locals = clientSubflows(n.t, n.client, server); slices.Contains(locals, wantLocals[0]) && slices.Contains(locals, wantLocals[1]) {
			break
		}
	}
	if !slices.Contains(locals, wantLocals[0]) || !slices.Contains(locals, wantLocals[1]) {
		ss := nstest.In(n.t, n.client, "ss", "-tiMn")
		n.t.Errorf("%s: the client's MPTCP subflows to %s are from %v, want one from each of %v\n%s", what, server, locals, wantLocals, ss)
	}
	if _, err := io.WriteString(c, "again\n"); err != nil {
		n.t.Fatalf("%s: %v", what, err)
	}
	if line, err := r.ReadString('\n'); line != "again\n" {
		n.t.Errorf("%s: the echo came back as %q (%v)", what, line, err)
	}
}

// clientSubflows returns the local addresses of the established TCP
// sockets in ns to server's peer port that are MPTCP subflows
// ("tcp-ulp-mptcp" in ss -ti).
func clientSubflows(t *testing.T, ns string, server netip.Addr) []string {
	t.Helper()
	out := nstest.In(t, ns, "ss", "-tinH", "state", "established", "dst", netip.PrefixFrom(server, server.BitLen()).String(), "dport", "= :"+fmt.Sprint(peerPort))
	return subflowLocals(out)
}

// udpAsk sends payload from the client namespace to addr until an answer
// comes (a UDP relay starting up may lose the first), and returns it.
func (n *peerNet) udpAsk(addr netip.AddrPort, payload string) string {
	n.t.Helper()
	var c *net.UDPConn
	nstest.Do(n.t, n.client, func() (err error) {
		c, err = net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(addr))
		return err
	})
	defer c.Close()
	buf := make([]byte, 2048)
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		if _, err := c.Write([]byte(payload)); err != nil {
			n.t.Fatal(err)
		}
		// Resent after a second without an answer: a guard against a
		// lost datagram, not a timing assertion.
		c.SetReadDeadline(time.Now().Add(time.Second))
		if k, err := c.Read(buf); err == nil {
			return string(buf[:k])
		}
	}
	n.t.Fatalf("no answer through %s", addr)
	return ""
}

// shadowsocks-libev's clients against braid's peer, each with each
// cipher, over two paths from the client: ss-local (SOCKS5) over the
// peer's IPv4 and IPv6 addresses, ss-tunnel and ss-redir (REDIRECT rules
// in the client's nftables) reach the target, which sees the peer's
// address, over a Multipath TCP connection with a subflow from each path
// (ss -ti in the client's namespace); ss-tunnel -u reaches a UDP whoami
// through the peer's UDP relay in IPv4 and IPv6, and the whoami sees the
// peer's address.
func TestSSClientsThroughBraidPeer(t *testing.T) {
	nstest.RequireRoot(t)
	for _, bin := range []string{"ss-local", "ss-tunnel", "ss-redir", "nft"} {
		nstest.RequireBinary(t, bin)
	}
	n := newPeerNet(t)
	n.addSecondPath()
	for _, a := range []netip.Addr{targetV4, targetV6} {
		n.serveHold(netip.AddrPortFrom(a, holdPort))
		n.serveHold(netip.AddrPortFrom(a, redirPort))
		n.serveUDPWhoami(n.target, netip.AddrPortFrom(a, holdPort))
		n.serveUDPWhoami(n.target, netip.AddrPortFrom(a, redirPort))
	}
	n.perCipher(t, func(t *testing.T, i int, cipher, key string) {
		base := uint16(1100 + 20*i)
		local4, local6, tunnel4, tunnel6, redir, redir6 := base, base+1, base+2, base+3, base+4, base+5

		n.ssClient("ss-local", peerV4, local4, cipher, key, "-b", "127.0.0.1")
		n.ssClient("ss-local", peerV6, local6, cipher, key, "-b", "127.0.0.1")
		for _, c := range []struct {
			port        uint16
			server, dst netip.Addr
			want        netip.Addr
		}{
			{local4, peerV4, targetV4, peerFarV4},
			{local4, peerV4, targetV6, peerFarV6},
			{local6, peerV6, targetV4, peerFarV4},
			{local6, peerV6, targetV6, peerFarV6},
		} {
			what := fmt.Sprintf("ss-local over %s to %s", c.server, c.dst)
			n.throughPeer(what, n.socksConn(c.port, netip.AddrPortFrom(c.dst, holdPort)), c.server, c.want)
		}

		for _, c := range []struct {
			port      uint16
			dst, want netip.Addr
		}{{tunnel4, targetV4, peerFarV4}, {tunnel6, targetV6, peerFarV6}} {
			n.ssClient("ss-tunnel", peerV4, c.port, cipher, key, "-b", "127.0.0.1", "-u",
				"-L", netip.AddrPortFrom(c.dst, holdPort).String())
			what := fmt.Sprintf("ss-tunnel to %s", c.dst)
			n.throughPeer(what, n.dialClient(fmt.Sprintf("127.0.0.1:%d", c.port)), peerV4, c.want)
			if got := n.udpAsk(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), c.port), "who"); got != c.want.String() {
				t.Errorf("ss-tunnel -u to %s: the whoami saw %q, want the peer's %s", c.dst, got, c.want)
			}
		}

		// ss-redir: TCP by REDIRECT, UDP by TPROXY (the client's own
		// datagrams, marked on output, routed back in through lo
		// where TPROXY takes them).
		// One per family: ss-redir reads a datagram's original
		// destination in its socket's own family.
		n.ssClient("ss-redir", peerV4, redir, cipher, key, "-b", "0.0.0.0", "-u")
		n.ssClient("ss-redir", peerV4, redir6, cipher, key, "-b", "::", "-u")
		nstest.NftLoad(t, n.client, fmt.Sprintf(`table inet ssredir {
	chain out {
		type nat hook output priority -100; policy accept;
		ip daddr %[1]s tcp dport %[3]d redirect to :%[4]d
		ip6 daddr %[2]s tcp dport %[3]d redirect to :%[5]d
	}
	chain marking {
		type route hook output priority mangle; policy accept;
		ip daddr %[1]s udp dport %[3]d meta mark set 0x77
		ip6 daddr %[2]s udp dport %[3]d meta mark set 0x77
	}
	chain transparent {
		type filter hook prerouting priority mangle; policy accept;
		meta mark 0x77 ip daddr %[1]s udp dport %[3]d tproxy ip to :%[4]d
		meta mark 0x77 ip6 daddr %[2]s udp dport %[3]d tproxy ip6 to :%[5]d
	}
}`, targetV4, targetV6, redirPort, redir, redir6))
		t.Cleanup(func() { nstest.In(t, n.client, "nft", "delete", "table", "inet", "ssredir") })
		for _, c := range []struct{ dst, want netip.Addr }{{targetV4, peerFarV4}, {targetV6, peerFarV6}} {
			what := fmt.Sprintf("ss-redir to %s", c.dst)
			n.throughPeer(what, n.dialClient(netip.AddrPortFrom(c.dst, redirPort).String()), peerV4, c.want)
			if got := n.udpAsk(netip.AddrPortFrom(c.dst, redirPort), "who"); got != c.want.String() {
				t.Errorf("ss-redir -u to %s: the whoami saw %q, want the peer's %s", c.dst, got, c.want)
			}
		}
	})
}
