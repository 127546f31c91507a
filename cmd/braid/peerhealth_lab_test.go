package main

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/braid-router/braid/internal/nstest"
	"github.com/braid-router/braid/lab"
	"github.com/braid-router/braid/lab/labtest"
	"github.com/braid-router/braid/reconcile"
	"github.com/braid-router/braid/session"
)

// peerDown holds once the proxy runs, its status says its peer is down
// and the last pass left the steering out (its note says why).
func peerDown(st reconcile.Status) bool {
	s, ok := sessionIn(st, "session[proxy/aggregation]")
	if !converged(st) || !ok || s.State != session.Running || !strings.Contains(s.Detail, "peer down: ") {
		return false
	}
	for _, n := range st.Notes {
		if strings.Contains(n.String(), "aggregation: peer down: ") {
			return true
		}
	}
	return false
}

// peerUp waits until the proxy's status says its peer is up and the
// steering is in the box's kernel.
func peerUp(t *testing.T, l *lab.Lab, d *daemon, what string) reconcile.Status {
	t.Helper()
	return d.within(60*time.Second, what, func(st reconcile.Status) bool {
		s, ok := sessionIn(st, "session[proxy/aggregation]")
		return converged(st) && ok && strings.Contains(s.Detail, "peer up over ") && tproxyChain(t, l)
	})
}

// lanThroughPeer waits until the proxy's peer is up over both uplinks with
// the steering in place (what names that for a failure), then, the LAN
// client's neighbour cache flushed, until the Internet server sees the
// LAN client's IPv4 connections come from the peer.
func lanThroughPeer(t *testing.T, l *lab.Lab, d *daemon, what string) {
	t.Helper()
	st := peerUp(t, l, d, what)
	if s, _ := sessionIn(st, "session[proxy/aggregation]"); !strings.Contains(s.Detail, "peer up over isp1, isp2") {
		t.Errorf("the proxy's status: %q, want the peer up over both uplinks", s.Detail)
	}
	flushLANNeighbours(t, l)
	seenAs(t, l, lab.PeerV4, 30*time.Second)
}

// tproxyChain reports whether the box's kernel holds the steering's
// chain.
func tproxyChain(t *testing.T, l *lab.Lab) bool {
	t.Helper()
	_, err := l.Run(context.Background(), lab.RoleBox, "nft", "list", "chain", "inet", "braid", "prerouting_tproxy")
	return err == nil
}

// seenAs asks the Internet server's whoami over IPv4 from the LAN until
// it sees the client at want (an address), for up to within, and returns
// how many connections failed meanwhile (a reset, a timeout, no answer).
func seenAs(t *testing.T, l *lab.Lab, want string, within time.Duration) (failed int) {
	t.Helper()
	return seenAt(t, l, lab.ServerV4, want, within)
}

// seenAt is seenAs with the server's address.
func seenAt(t *testing.T, l *lab.Lab, serverAddr, want string, within time.Duration) (failed int) {
	t.Helper()
	server := net.JoinHostPort(serverAddr, strconv.Itoa(lab.WhoamiPort))
	var got string
	var err error
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		got, err = ask(l, lab.RoleLAN, server)
		if ap, perr := netip.ParseAddrPort(got); perr == nil && ap.Addr().String() == want {
			return failed
		}
		if err != nil || got == "" {
			failed++
		}
	}
	t.Fatalf("LAN to %s: the server saw %q (%v), want %s", server, got, err, want)
	return failed
}

// TestPeerHealthFallback: braid's box and braid's peer, no end-to-end
// probe. LAN TCP goes through the peer; with the peer stopped, new LAN
// connections go direct, out of isp1 (the server sees the box's
// address), and the proxy's status says why; the peer started again
// with another key is reached by the probes, so LAN TCP goes to it again,
// until K connections in a row get no answer: then direct again; the
// right key back, the trial after the backoff brings the peer back.
func TestPeerHealthFallback(t *testing.T) {
	l := labtest.New(t)
	b := labBoxOf(t, l)
	const port = 8391
	const cipher = "aes-256-gcm"
	pb := nsBox(t, l.NS(lab.RolePeer))
	pd := braidPeerDaemon(t, pb, port, cipher, ssPassword)

	d := b.startDaemon("-f", writeSpec(t, aggregationSpec(t, port, cipher, ssPassword)))
	lanThroughPeer(t, l, d, "the peer proven up and the steering in place")
	seenAt(t, l, lab.ServerV6, lab.PeerV6, 30*time.Second)

	// The peer stopped: the probes find it refused over both uplinks.
	pd.stop(syscall.SIGTERM)
	st := d.within(60*time.Second, "the peer down and the steering withdrawn", peerDown)
	s, _ := sessionIn(st, "session[proxy/aggregation]")
	if want := "peer down: not reached over isp1 (connection refused), isp2 (connection refused)"; !strings.Contains(s.Detail, want) {
		t.Errorf("the proxy's status: %q, want %q", s.Detail, want)
	}
	if tproxyChain(t, l) {
		t.Error("the peer down, the steering is still in the kernel")
	}
	if r := b.braid(nil, "status"); !strings.Contains(r.stdout, "peer/10.203.0.2:8391 from proxy/aggregation") ||
		!strings.Contains(r.stdout, "down: not reached over isp1 (connection refused)") {
		t.Errorf("braid status does not show the peer's verdict:\n%s", r.stdout)
	}
	seenAs(t, l, lab.BoxWAN1V4, 30*time.Second)
	// IPv6 is routed, not NATed: the server sees the LAN client.
	seenAt(t, l, lab.ServerV6, lab.LANClientV6, 30*time.Second)

	// Another key: the probes connect, the relayed connections get
	// nothing. At most K fail before LAN traffic goes direct again, and one
	// more that may be in flight when the steering goes.
	pd = braidPeerDaemon(t, pb, port, cipher, "another-"+ssPassword)
	peerUp(t, l, d, "the steering back for the peer with another key")
	failed := seenAs(t, l, lab.BoxWAN1V4, 90*time.Second)
	t.Logf("%d LAN connections failed before LAN TCP went direct", failed)
	if failed < 1 || failed > 3+1 {
		t.Errorf("%d LAN connections failed before they went direct, want 1 to K+1 (K = 3)", failed)
	}
	st = d.within(60*time.Second, "the peer down for its silence", peerDown)
	if s, _ := sessionIn(st, "session[proxy/aggregation]"); !strings.Contains(s.Detail, "no answer on 3 connections in a row") || !strings.Contains(s.Detail, "trial at") {
		t.Errorf("the proxy's status: %q, want the peer down for its silence, with its trial", s.Detail)
	}

	// The right key again: back through the peer after the trial's
	// backoff (30 s).
	pd.stop(syscall.SIGTERM)
	braidPeerDaemon(t, pb, port, cipher, ssPassword)
	seenAs(t, l, lab.PeerV4, 120*time.Second)
}

// TestPeerHealthEndToEnd: with aggregation.peer.dns, the probe asks a
// resolver (dnsmasq in the Internet namespace) through the peer: the
// peer given another key is down at once, without a LAN connection
// lost to it, and back as soon as its key is right.
func TestPeerHealthEndToEnd(t *testing.T) {
	nstest.RequireBinary(t, "dnsmasq")
	l := labtest.New(t)
	b := labBoxOf(t, l)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := l.Start(ctx, lab.Process{Name: "resolver", Role: lab.RoleInet, Command: []string{
		"dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts", "--bind-interfaces",
		"--listen-address=" + lab.ServerV4, "--port=53", "--address=/localhost/127.0.0.1",
		"--pid-file={pidfile}"}}); err != nil {
		t.Fatal(err)
	}
	const port = 8392
	const cipher = "chacha20-ietf-poly1305"
	pb := nsBox(t, l.NS(lab.RolePeer))
	pd := braidPeerDaemon(t, pb, port, cipher, ssPassword)
	spec := strings.Replace(aggregationSpec(t, port, cipher, ssPassword), "      cipher: "+cipher+"\n", "      cipher: "+cipher+"\n      dns: "+lab.ServerV4+"\n", 1)
	d := b.startDaemon("-f", writeSpec(t, spec))
	lanThroughPeer(t, l, d, "the peer proven up end to end and the steering in place")

	pd.stop(syscall.SIGTERM)
	d.within(60*time.Second, "the peer down", peerDown)
	// Another key: never up, so no LAN connection is lost to it.
	pd = braidPeerDaemon(t, pb, port, cipher, "another-"+ssPassword)
	d.within(60*time.Second, "the probes through the peer with another key failing", func(st reconcile.Status) bool {
		s, _ := sessionIn(st, "session[proxy/aggregation]")
		return peerDown(st) && strings.Contains(s.Detail, "no DNS answer through the peer")
	})
	if failed := seenAs(t, l, lab.BoxWAN1V4, 30*time.Second); failed != 0 {
		t.Errorf("%d LAN connections failed with the peer down", failed)
	}
	if tproxyChain(t, l) {
		t.Error("the steering is back for a peer with another key")
	}
	// The right key: back at the next probe, no trial to wait for.
	pd.stop(syscall.SIGTERM)
	braidPeerDaemon(t, pb, port, cipher, ssPassword)
	peerUp(t, l, d, "the steering back")
	seenAs(t, l, lab.PeerV4, 30*time.Second)
}
