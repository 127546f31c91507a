package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/braid-router/braid/internal/nstest"
	"github.com/braid-router/braid/lab"
	"github.com/braid-router/braid/lab/labtest"
	"github.com/braid-router/braid/sessions/proxy"
)

// ssPassword is the shadowsocks password of the lab's ss-server.
const ssPassword = "lab-not-a-secret"

// echoPort is where the Internet server echoes TCP (socat), for a LAN
// connection that stays open while the test looks at its subflows.
const echoPort = 9000

// aggregationSpec is specs/lab.yaml with MPTCP on both uplinks and the
// transparent proxy on, its peer the ss-server at port with cipher and
// key.
func aggregationSpec(t *testing.T, port int, cipher, key string) string {
	spec := readFile(t, "../../specs/lab.yaml")
	for _, wan := range []string{"wan1", "wan2"} {
		spec = strings.Replace(spec, "    interface: "+wan+"\n", "    interface: "+wan+"\n    mptcp: {mode: subflow}\n", 1)
	}
	return spec + `  aggregation:
    peer:
      address: ` + net.JoinHostPort(lab.PeerV4, strconv.Itoa(port)) + `
      cipher: ` + cipher + `
      key: {value: ` + key + `}
    tcp: proxy
`
}

// TestProxyThroughShadowsocksLibev: braid's box against Debian's
// shadowsocks-libev (`ss-server --mptcp`) in the peer namespace, with
// each cipher: a LAN client reaches the Internet server over IPv4 and
// IPv6 and the server sees the peer's address; the box-to-peer
// connection is Multipath TCP with a subflow from each uplink, as ss(8)
// lists them in the box; with a wrong key, LAN connections are reset,
// not left hanging; with no server at the peer's port, the peer is
// never proven up and LAN connections go direct.
func TestProxyThroughShadowsocksLibev(t *testing.T) {
	nstest.RequireBinary(t, "ss-server")
	nstest.RequireBinary(t, "socat")
	l := labtest.New(t)
	b := labBoxOf(t, l)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// The peer accepts a subflow per box uplink.
	if _, err := l.Run(ctx, lab.RolePeer, "ip", "mptcp", "limits", "set", "subflows", "4", "add_addr_accepted", "4"); err != nil {
		t.Fatal(err)
	}
	if err := l.Start(ctx, lab.Process{Name: "echo", Role: lab.RoleInet, Command: []string{
		"socat", "TCP-LISTEN:" + strconv.Itoa(echoPort) + ",bind=" + lab.ServerV4 + ",fork,reuseaddr", "PIPE"}}); err != nil {
		t.Fatal(err)
	}
	ciphers := ssCiphers
	port := func(i int) int { return 8381 + i }
	startSSServers(ctx, t, l, port)
	server4 := net.JoinHostPort(lab.ServerV4, strconv.Itoa(lab.WhoamiPort))
	server6 := net.JoinHostPort(lab.ServerV6, strconv.Itoa(lab.WhoamiPort))

	for i, cipher := range ciphers {
		d := b.startDaemon("-f", writeSpec(t, aggregationSpec(t, port(i), cipher, ssPassword)))
		steeredLAN(t, l, d, cipher+": the proxy running and its steering in place")
		// ss-server may still be starting: ask until the answer comes.
		for _, c := range []struct{ dst, peer string }{{server4, lab.PeerV4}, {server6, lab.PeerV6}} {
			var got string
			var err error
			seen := func() bool {
				ap, perr := netip.ParseAddrPort(got)
				return perr == nil && ap.Addr().String() == c.peer
			}
			for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
				if got, err = ask(l, lab.RoleLAN, c.dst); seen() {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if !seen() {
				t.Errorf("%s: LAN to %s: the server saw %q (%v), want the peer's %s", cipher, c.dst, got, err, c.peer)
			}
		}
		proxySubflows(t, l, cipher)
		d.stop(syscall.SIGTERM)
	}

	// A wrong key, or no server at the peer's port: LAN connections are
	// reset, not left hanging.
	for _, c := range []struct {
		what string
		port int
		key  string
	}{
		{"a wrong key", port(0), "wrong-" + ssPassword},
		{"no server", port(len(ciphers)), ssPassword},
	} {
		spec := writeSpec(t, aggregationSpec(t, c.port, ciphers[0], c.key))
		d := b.startDaemon("-f", spec)
		if c.what == "no server" {
			// Never proven up: no steering, LAN traffic goes direct.
			d.within(60*time.Second, c.what+": the proxy running, its peer down", peerDown)
			seenAs(t, l, lab.BoxWAN1V4, 30*time.Second)
		} else {
			// Fewer connections than the peer's health forgives (K).
			d.within(60*time.Second, c.what+": the proxy running", steering)
			for _, dst := range []string{server4, server6} {
				if err := lanExchange(l, dst); !errors.Is(err, syscall.ECONNRESET) {
					t.Errorf("%s: LAN to %s ended with %v, want a reset", c.what, dst, err)
				}
			}
		}
		// The listener itself, asked for directly: nothing to relay.
		if c.what == "no server" {
			dst := net.JoinHostPort("192.168.50.1", strconv.Itoa(proxy.Port))
			if err := lanExchange(l, dst); !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("LAN to the listener at %s ended with %v, want a reset", dst, err)
			}
		}
		if c.what == "a wrong key" {
			// The key fixed in the spec: the running proxy takes it in
			// place, and LAN connections reach the server again.
			writeSpecTo(t, spec, aggregationSpec(t, port(0), ciphers[0], ssPassword))
			var got string
			var err error
			for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
				if got, err = ask(l, lab.RoleLAN, server4); strings.HasPrefix(got, lab.PeerV4+":") {
					break
				}
			}
			if !strings.HasPrefix(got, lab.PeerV4+":") {
				t.Errorf("the key fixed: LAN to %s: the server saw %q (%v), want the peer", server4, got, err)
			}
			if logs := d.logs.String(); !strings.Contains(logs, "session reconfigured in place") || strings.Contains(logs, "session restarts") {
				t.Errorf("the key fixed: the proxy session was not reconfigured in place:\n%s", logs)
			}
		}
		d.stop(syscall.SIGTERM)
	}
}

// lanExchange connects from the LAN client to dst, says hello, reads
// until the end and returns how it ended: nil for an answer and EOF.
func lanExchange(l *lab.Lab, dst string) error {
	return l.Do(lab.RoleLAN, func() error {
		c, err := net.DialTimeout("tcp", dst, 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		// A guard against a hang, not a timing assertion.
		c.SetDeadline(time.Now().Add(30 * time.Second))
		// A reset that comes first is reported once, here or by the
		// read.
		if _, err := c.Write([]byte("hello\n")); err != nil {
			return err
		}
		b, err := io.ReadAll(c)
		if len(b) > 0 {
			return errors.New("read " + strconv.Quote(string(b)))
		}
		return err
	})
}

// proxySubflows opens a LAN connection to the echo server through the proxy
// and, while it is open and has carried bytes both ways, checks with ss(8)
// in the box that the box-to-peer connection is MPTCP with a subflow from
// each uplink's address.
func proxySubflows(t *testing.T, l *lab.Lab, cipher string) {
	t.Helper()
	err := l.Do(lab.RoleLAN, func() error {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(lab.ServerV4, strconv.Itoa(echoPort)), 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		msg := []byte("through the peer\n")
		if _, err := c.Write(msg); err != nil {
			return err
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(c, got); err != nil {
			return err
		}
		// Wait for both: another connection's subflows (an earlier
		// cipher's, closing) may be listed beside this one's.
		var locals []string
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
			locals = mptcpSubflows(t, l, lab.PeerV4)
			if slices.Contains(locals, lab.BoxWAN1V4) && slices.Contains(locals, lab.BoxWAN2V4) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		for _, want := range []string{lab.BoxWAN1V4, lab.BoxWAN2V4} {
			found := false
			for _, a := range locals {
				found = found || a == want
			}
			if !found {
				t.Errorf("%s: the box's MPTCP subflows to the peer are from %v, want one from %s\n%s", cipher, locals, want, ssOut(t, l))
			}
		}
		return nil
	})
	if err != nil {
		t.Errorf("%s: a LAN connection to the echo server: %v", cipher, err)
	}
}

// mptcpSubflows returns the local addresses of the box's established TCP
// sockets to peer that are MPTCP subflows ("tcp-ulp-mptcp" in ss -ti).
func mptcpSubflows(t *testing.T, l *lab.Lab, peer string) []string {
	out, err := l.Run(context.Background(), lab.RoleBox, "ss", "-tinH", "state", "established", "dst", peer)
	if err != nil {
		t.Fatal(err)
	}
	return subflowLocals(out)
}

// ssOut is what ss -M and ss -ti list in the box, for a failure message.
func ssOut(t *testing.T, l *lab.Lab) string {
	m, _ := l.Run(context.Background(), lab.RoleBox, "ss", "-MH")
	ti, _ := l.Run(context.Background(), lab.RoleBox, "ss", "-tinH")
	return "ss -M:\n" + m + "ss -ti:\n" + ti
}

// TestProxyThroughBraidPeer: braid on both ends. `braid run -f peer.yaml`
// in the lab's peer namespace, braid's box pointed at it: the LAN client
// reaches the Internet server over IPv4 and IPv6, the server sees the
// peer's address in each family, and the box-to-peer connection has a
// subflow from each uplink.
func TestProxyThroughBraidPeer(t *testing.T) {
	nstest.RequireBinary(t, "socat")
	l := labtest.New(t)
	b := labBoxOf(t, l)
	if err := l.Start(context.Background(), lab.Process{Name: "echo", Role: lab.RoleInet, Command: []string{
		"socat", "TCP-LISTEN:" + strconv.Itoa(echoPort) + ",bind=" + lab.ServerV4 + ",fork,reuseaddr", "PIPE"}}); err != nil {
		t.Fatal(err)
	}
	const port = 8390
	const cipher = "aes-256-gcm"
	braidPeerDaemon(t, nsBox(t, l.NS(lab.RolePeer)), port, cipher, ssPassword)

	d := b.startDaemon("-f", writeSpec(t, aggregationSpec(t, port, cipher, ssPassword)))
	steeredLAN(t, l, d, "the proxy running and its steering in place")
	for _, c := range []struct{ dst, peer string }{
		{net.JoinHostPort(lab.ServerV4, strconv.Itoa(lab.WhoamiPort)), lab.PeerV4},
		{net.JoinHostPort(lab.ServerV6, strconv.Itoa(lab.WhoamiPort)), lab.PeerV6},
	} {
		var got string
		var err error
		seen := func() bool {
			ap, perr := netip.ParseAddrPort(got)
			return perr == nil && ap.Addr().String() == c.peer
		}
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if got, err = ask(l, lab.RoleLAN, c.dst); seen() {
				break
			}
		}
		if !seen() {
			t.Errorf("LAN to %s through braid's peer: the server saw %q (%v), want the peer's %s", c.dst, got, err, c.peer)
		}
	}
	proxySubflows(t, l, "braid's peer")
}
