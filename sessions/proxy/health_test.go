package proxy

import (
	"context"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/Jigsaw-Code/outline-sdk/transport/shadowsocks"

	"github.com/braid-router/braid/api"
	"github.com/braid-router/braid/facts"
	"github.com/braid-router/braid/internal/nstest"
	"github.com/braid-router/braid/internal/sessiontest"
	"github.com/braid-router/braid/session"
	"github.com/braid-router/braid/sessions/peer"
	"github.com/braid-router/braid/sessions/proxy/peerhealth"
)

const testCipher = "chacha20-ietf-poly1305"

// braidPeer serves braid's peer (sessions/peer) with password on ln
// until the test ends or stop is called; allowLocal lets it reach the
// test's loopback servers.
func braidPeer(t *testing.T, ln net.Listener, password string, allowLocal ...string) (stop func()) {
	t.Helper()
	key, err := shadowsocks.NewEncryptionKey(testCipher, password)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		(&peer.Server{}).Serve(ctx, ln, key, allowLocal, nil)
	}()
	stop = func() { cancel(); <-done }
	t.Cleanup(stop)
	return stop
}

// greeter is a destination (at the address given, or 127.0.0.1:0) that greets every client and half-closes,
// then reads until the client's end of stream and closes: a clean end
// both ways (a close with the client's bytes unread would be a reset,
// which the relay passes on).
func greeter(t *testing.T, at ...string) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", append(at, "127.0.0.1:0")[0])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.Write([]byte("hello from the destination\n"))
				c.(*net.TCPConn).CloseWrite()
				io.Copy(io.Discard, c)
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

// healthRig is the proxy's relayer and peer health, as Run wires them,
// without the transparent listener: the test hands LAN connections to
// the relayer itself.
type healthRig struct {
	hub *facts.Hub
	h   *peerHealth
	r   *relayer
	cfg Config
}

func newHealthRig(t *testing.T, peerAddr string, params peerhealth.Params) *healthRig {
	t.Helper()
	hub, err := facts.Open(facts.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hub.Close() })
	env := session.NewEnv(Kind+"/"+Name, nil, hub, nil)
	cfg := Config{Port: Port, Peer: peerAddr, Cipher: testCipher, Key: &api.Secret{Value: "right"}}
	h := newPeerHealth(env, 50*time.Millisecond, time.Second, DefaultSubflowSettle, params)
	r, err := (&Proxy{}).relayer(cfg, env, h)
	if err != nil {
		t.Fatal(err)
	}
	r.replyWait = 300 * time.Millisecond
	if err := h.configure(cfg, r.key, r.secret, "test"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return &healthRig{hub: hub, h: h, r: r, cfg: cfg}
}

// waitPeer waits until the published verdict satisfies cond.
func (g *healthRig) waitPeer(t *testing.T, what string, cond func(facts.Peer, bool) bool) facts.Peer {
	t.Helper()
	var p facts.Peer
	var ok bool
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if p, ok = g.hub.Set().Peer(g.cfg.Peer); cond(p, ok) {
			return p
		}
	}
	t.Fatalf("waiting for the peer %s: the verdict is %+v (%v)", what, p, ok)
	return p
}

// lanConn relays one LAN connection to dst and returns what its client
// read and how its read ended.
func (g *healthRig) lanConn(t *testing.T, dst netip.AddrPort) (string, error) {
	t.Helper()
	client, lan := pair(t)
	go g.r.serve(context.Background(), lan, dst)
	client.Write([]byte("hello\n"))
	client.SetReadDeadline(time.Now().Add(30 * time.Second)) // a guard against a hang
	b, err := io.ReadAll(client)
	return string(b), err
}

// TestPeerHealth: braid's peer given another key accepts connections
// and answers none: the probes reach it, so it is up, until K relayed
// connections in a row go unanswered (each LAN client is reset); then it
// is down, and after the backoff back on trial. The peer with the right
// key answers, which confirms it; stopped, its probes fail and it is
// down again.
func TestPeerHealth(t *testing.T) {
	dst := greeter(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	stop := braidPeer(t, ln, "another key", dst.String())
	g := newHealthRig(t, addr, peerhealth.Params{Backoff: 500 * time.Millisecond})
	p := g.waitPeer(t, "up", func(p facts.Peer, ok bool) bool { return ok && p.Healthy })
	if strings.Join(p.Uplinks, ",") != mainTable || p.Reason != "" {
		t.Errorf("verdict %+v, want up over %s", p, mainTable)
	}

	for i := range peerhealth.DefaultMisses {
		if _, known := g.hub.Set().Peer(addr); !known {
			t.Fatal("the verdict went")
		}
		if got, err := g.lanConn(t, dst); !isReset(err) {
			t.Errorf("connection %d through a peer with another key: read %q, %v; want a reset", i, got, err)
		}
	}
	p = g.waitPeer(t, "down for its silence", func(p facts.Peer, ok bool) bool { return ok && !p.Healthy })
	if want := "no answer on 3 connections in a row"; p.Reason != want {
		t.Errorf("reason %q, want %q", p.Reason, want)
	}

	// The right key, at the same address.
	stop()
	if ln, err = net.Listen("tcp", addr); err != nil {
		t.Fatal(err)
	}
	stop = braidPeer(t, ln, "right", dst.String())
	p = g.waitPeer(t, "on trial", func(p facts.Peer, ok bool) bool { return ok && p.Healthy })
	if !strings.HasPrefix(p.Reason, "on trial") {
		t.Errorf("back without a trial: %+v", p)
	}
	if got, err := g.lanConn(t, dst); err != nil || got != "hello from the destination\n" {
		t.Errorf("through the peer with the right key: read %q, %v", got, err)
	}
	g.waitPeer(t, "confirmed", func(p facts.Peer, ok bool) bool { return ok && p.Healthy && p.Reason == "" })

	// Stopped: not reached.
	stop()
	p = g.waitPeer(t, "down, not reached", func(p facts.Peer, ok bool) bool { return ok && !p.Healthy })
	if want := "not reached over " + mainTable + " (connection refused)"; p.Reason != want {
		t.Errorf("reason %q, want %q", p.Reason, want)
	}
	g.h.mu.Lock()
	st := g.h.describeLocked(g.h.m.Verdict())
	g.h.mu.Unlock()
	if !strings.Contains(st, "peer down: "+p.Reason) || !strings.Contains(st, "probed at") || !strings.Contains(st, mainTable+" not reached (connection refused)") {
		t.Errorf("status %q", st)
	}
}

// TestRelayResetsWhenThePeerDialFails: a LAN connection whose dial to
// the peer fails is reset at once, not left hanging.
func TestRelayResetsWhenThePeerDialFails(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	g := newHealthRig(t, addr, peerhealth.Params{})
	// The client says nothing: a close with unread data would be a reset
	// too, and the test would not tell them apart.
	client, lan := pair(t)
	go g.r.serve(context.Background(), lan, netip.MustParseAddrPort("198.51.100.80:7"))
	client.SetReadDeadline(time.Now().Add(30 * time.Second)) // a guard against a hang
	if got, err := io.ReadAll(client); !isReset(err) {
		t.Errorf("the peer unreachable: the LAN client read %q, %v; want a reset", got, err)
	}
}

// TestProxyUpdatesUplinksInPlace: the session, run as the supervisor
// runs it (root, its own namespace), proves its peer up over the uplinks
// it is given (each probe marked with its table, which no rule uses
// here: the peer is on loopback); other uplinks, as their health changes,
// apply in place, never a restart; another port needs one; the verdict
// goes with the session.
func TestProxyUpdatesUplinksInPlace(t *testing.T) {
	ns := nstest.New(t)
	// The session's own goroutine runs in ns (its listeners are there);
	// the probes dial from goroutines of their own, which the runtime
	// runs on threads in the test process's namespace: the peer listens
	// there. (braid run moves its whole process into --netns.)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	braidPeer(t, ln, "right")
	hub, err := facts.Open(facts.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	p := &Proxy{ProbeInterval: 50 * time.Millisecond}
	cfg := Config{Port: Port, Peer: addr, Cipher: testCipher, Key: &api.Secret{Value: "right"}, Uplinks: []Uplink{{Name: "isp1", Mark: 7101}}}
	run := sessiontest.Start(t, ns, Kind+"/"+Name, hub, func(ctx context.Context, env *session.Env) error { return p.Run(ctx, cfg, env) })
	uplinks := func(want string) {
		t.Helper()
		sessiontest.WaitFor(t, "the peer up over "+want, 30*time.Second, func() bool {
			v, ok := hub.Set().Peer(addr)
			return ok && v.Healthy && strings.Join(v.Uplinks, ",") == want
		})
	}
	uplinks("isp1")

	next := cfg
	next.Uplinks = []Uplink{{Name: "isp2", Mark: 7102}, {Name: "isp1", Mark: 7101}}
	if err := p.Update(next); err != nil {
		t.Fatalf("other uplinks: %v, want them in place", err)
	}
	uplinks("isp2,isp1")
	if st, detail := run.Status(); st != session.Running || !strings.Contains(detail, "peer up over isp2, isp1 (isp2 reached, isp1 reached; probed at ") {
		t.Errorf("status %s: %q", st, detail)
	}
	next.Port = Port + 1
	if err := p.Update(next); err != session.ErrRestart {
		t.Errorf("another port: %v, want %v", err, session.ErrRestart)
	}
	run.Stop(t, session.ErrRemoved)
	if v, ok := hub.Set().Peer(addr); ok {
		t.Errorf("the verdict outlived the session: %+v", v)
	}
}

// TestPeerDownResetsWaitingConnections: once the peer has answered, a
// silent connection may be a long poll and is not given up on its own;
// but when the peer goes down (here: a rotated key, K connections in a
// row silent), the connections it has not answered are reset, not left
// hanging.
func TestPeerDownResetsWaitingConnections(t *testing.T) {
	dst := greeter(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	stop := braidPeer(t, ln, "right", dst.String())
	g := newHealthRig(t, addr, peerhealth.Params{Backoff: time.Hour})
	g.waitPeer(t, "up", func(p facts.Peer, ok bool) bool { return ok && p.Healthy })
	if got, err := g.lanConn(t, dst); err != nil || got != "hello from the destination\n" {
		t.Fatalf("through the peer: read %q, %v", got, err)
	}
	// The key rotated on the peer.
	stop()
	if ln, err = net.Listen("tcp", addr); err != nil {
		t.Fatal(err)
	}
	braidPeer(t, ln, "rotated", dst.String())
	if g.h.strict() {
		t.Fatal("strict after an answer")
	}
	errs := make(chan error, peerhealth.DefaultMisses)
	for range peerhealth.DefaultMisses {
		client, lan := pair(t)
		go g.r.serve(context.Background(), lan, dst)
		go func() {
			client.Write([]byte("hello\n"))
			client.SetReadDeadline(time.Now().Add(30 * time.Second)) // a guard against a hang
			_, err := io.ReadAll(client)
			errs <- err
		}()
	}
	for range peerhealth.DefaultMisses {
		if err := <-errs; !isReset(err) {
			t.Errorf("a connection the peer never answered ended with %v, want a reset", err)
		}
	}
	g.waitPeer(t, "down", func(p facts.Peer, ok bool) bool { return ok && !p.Healthy })
}

// greeter6 is greeter on IPv6 loopback.
func greeter6(t *testing.T) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	ln.Close()
	return greeter(t, "[::1]:0")
}

// TestPeerWithoutIPv6: braid's peer whose IPv6 dials fail (nothing
// listens at the IPv6 destination) closes each IPv6 request without a
// byte: the LAN client is reset, the peer stays healthy, and after K
// such connections in a row the verdict says it relays no IPv6, while
// IPv4 still goes through it. After the backoff IPv6 is on trial, and
// an answered IPv6 connection clears it.
func TestPeerWithoutIPv6(t *testing.T) {
	dst4, dst6 := greeter(t, "127.0.0.1:0"), greeter6(t)
	closed, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Fatal(err)
	}
	dead6 := closed.Addr().(*net.TCPAddr).AddrPort()
	closed.Close() // nothing listens there now: the peer's dial is refused
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	braidPeer(t, ln, "right", dst4.String(), dst6.String(), dead6.String())
	g := newHealthRig(t, addr, peerhealth.Params{Backoff: 500 * time.Millisecond})
	g.waitPeer(t, "up", func(p facts.Peer, ok bool) bool { return ok && p.Healthy })
	if got, err := g.lanConn(t, dst4); err != nil || got != "hello from the destination\n" {
		t.Fatalf("IPv4 through the peer: read %q, %v", got, err)
	}

	for i := range peerhealth.DefaultMisses {
		if p, _ := g.hub.Set().Peer(addr); p.NoIPv6 {
			t.Fatalf("no IPv6 after %d failures: %+v", i, p)
		}
		if got, err := g.lanConn(t, dead6); !isReset(err) {
			t.Errorf("IPv6 connection %d the peer cannot dial: read %q, %v; want a reset", i, got, err)
		}
	}
	p := g.waitPeer(t, "relaying no IPv6", func(p facts.Peer, ok bool) bool { return ok && p.NoIPv6 })
	if !p.Healthy || p.Reason != "" {
		t.Errorf("verdict %+v: IPv6 failures made the peer as a whole down", p)
	}
	g.h.mu.Lock()
	st := g.h.describeLocked(g.h.m.Verdict())
	g.h.mu.Unlock()
	if !strings.Contains(st, "the peer relays no IPv6 (the peer closed 3 IPv6 connections in a row without an answer): LAN IPv6 goes direct") || !strings.Contains(st, "IPv6 trial at") {
		t.Errorf("status %q", st)
	}
	if got, err := g.lanConn(t, dst4); err != nil || got != "hello from the destination\n" {
		t.Errorf("IPv4 through a peer without IPv6: read %q, %v", got, err)
	}

	// On trial after the backoff; an answered IPv6 connection ends it.
	g.waitPeer(t, "IPv6 on trial", func(p facts.Peer, ok bool) bool { return ok && p.Healthy && !p.NoIPv6 })
	if got, err := g.lanConn(t, dst6); err != nil || got != "hello from the destination\n" {
		t.Errorf("IPv6 through the peer: read %q, %v", got, err)
	}
	g.h.mu.Lock()
	v := g.h.m.Verdict()
	g.h.mu.Unlock()
	if v.NoIPv6 || v.IPv6Reason != "" {
		t.Errorf("after an answered IPv6 connection: %+v", v)
	}
}
