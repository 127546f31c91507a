package tunnel

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/braid-router/braid/api"
	"github.com/braid-router/braid/facts"
	"github.com/braid-router/braid/internal/lnstest"
	"github.com/braid-router/braid/internal/netns"
	"github.com/braid-router/braid/internal/nstest"
	"github.com/braid-router/braid/session"
)

// lacAddr is braid's side on the LNS's bridge.
var lacAddr = netip.MustParsePrefix("10.77.1.60/24")

// rig is a session run in a namespace of its own attached to a real
// LNS's bridge by link lac0.
type rig struct {
	t   *testing.T
	lns *lnstest.LNS
	ns  string
	hub *facts.Hub

	mu     sync.Mutex
	states []string
}

func newRig(t *testing.T, opts lnstest.Options) *rig {
	lns := lnstest.Start(t, opts)
	ns := nstest.New(t)
	lns.Attach(t, ns, "lac0", lacAddr)
	hub, err := facts.Open(facts.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hub.Close)
	return &rig{t: t, lns: lns, ns: ns, hub: hub}
}

func (r *rig) config(password string) Config {
	return Config{Tunnel: "sixpe", Interface: "sixpe", Server: r.lns.Addr.String(), Via: "isp1", Device: "lac0",
		Local: lacAddr.Addr(), MAC: "00:24:d4:aa:bb:cc", Secret: &api.Secret{Value: "6pe"},
		Username: "test", Password: &api.Secret{Value: password}, Keepalive: time.Second, KeepaliveFailures: 3}
}

// run runs the session in the rig's namespace until ctx ends, and
// returns what Run returned.
func (r *rig) run(ctx context.Context, cfg Config) <-chan error {
	done := make(chan error, 1)
	env := session.NewEnv(Kind+"/"+cfg.Tunnel, nstest.Logger(r.t), r.hub, func(s session.State, detail string) {
		r.mu.Lock()
		r.states = append(r.states, string(s)+": "+detail)
		r.mu.Unlock()
	})
	go func() {
		var err error
		if nerr := netns.Do(r.ns, func() error {
			err = (&Session{Hostname: "braid-test"}).Run(ctx, cfg, env)
			return nil
		}); nerr != nil {
			err = nerr
		}
		done <- err
	}()
	return done
}

func (r *rig) link() (facts.Link, bool) { return r.hub.Set().Link("tunnel/sixpe") }

func (r *rig) lastState() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.states) == 0 {
		return ""
	}
	return r.states[len(r.states)-1]
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The session brings the tunnel up to IPV6CP with the real LNS, gives
// the TUN link braid's link-local address and publishes it; the LNS's
// address is reachable through it. When its context ends it takes the
// tunnel down from the top (the LNS hears LCP's Terminate-Request, then
// the CDN and the StopCCN), withdraws the link, and the link is gone.
func TestTunnelUpAndDown(t *testing.T) {
	r := newRig(t, lnstest.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := r.run(ctx, r.config("testpass"))
	var lk facts.Link
	waitUntil(t, "the tunnel's link", func() bool {
		var ok bool
		lk, ok = r.link()
		return ok
	})
	if lk.Name != "sixpe" || len(lk.Addresses) != 1 || !lk.Addresses[0].Addr().IsLinkLocalUnicast() || lk.Peer != netip.MustParseAddr("fe80::1") {
		t.Errorf("link fact %+v", lk)
	}
	// 1500 less IPv4, UDP, L2TP and PPP headers.
	if lk.MTU != 1462 {
		t.Errorf("MTU %d, want 1462", lk.MTU)
	}
	addrs := nstest.Run(t, "ip", "-n", r.ns, "-6", "addr", "show", "dev", "sixpe")
	if !strings.Contains(addrs, lk.Addresses[0].String()) || strings.Count(addrs, "inet6") != 1 {
		t.Errorf("the link's addresses: %s, want %s alone", addrs, lk.Addresses[0])
	}
	if st := r.lastState(); !strings.HasPrefix(st, "running: up since") || !strings.Contains(st, "LNS "+r.lns.Addr.String()) {
		t.Errorf("state %q", st)
	}
	// IPv6 crosses the tunnel: the LNS answers a ping to its end (once
	// its ipv6-up script has put its address back as a /64, which it
	// does as IPV6CP opens: the first pings may find it gone).
	waitUntil(t, "the LNS answering a ping through the tunnel", func() bool {
		return exec.Command("ip", "netns", "exec", r.ns, "ping", "-6", "-c", "1", "-W", "2", "fe80::1%sixpe").Run() == nil
	})

	skip := len(r.lns.Log())
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after its context ended: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return")
	}
	if _, ok := r.link(); ok {
		t.Error("the link is still a fact")
	}
	if _, err := net.InterfaceByName("sixpe"); err == nil {
		t.Error("a link sixpe in the test's own namespace")
	}
	if out := nstest.Run(t, "ip", "-n", r.ns, "link", "show"); strings.Contains(out, "sixpe") {
		t.Errorf("the TUN link is still there:\n%s", out)
	}
	r.lns.WaitLog(t, `rcvd \[LCP TermReq`, skip, 30*time.Second)
	r.lns.WaitLog(t, `Call-Disconnect-Notify|Stop-Control-Connection-Notification`, skip, 30*time.Second)
}

// A wrong password ends in ErrPPPAuth, which status shows.
func TestTunnelWrongPassword(t *testing.T) {
	r := newRig(t, lnstest.Options{})
	err := <-r.run(context.Background(), r.config("wrong"))
	if !errors.Is(err, ErrPPPAuth) || !strings.Contains(err.Error(), "PPP authentication refused") {
		t.Errorf("Run: %v, want %v", err, ErrPPPAuth)
	}
	if _, ok := r.link(); ok {
		t.Error("a link fact after a refused login")
	}
}

// A wrong secret ends in ErrTunnelAuth.
func TestTunnelWrongSecret(t *testing.T) {
	r := newRig(t, lnstest.Options{Secret: "not-6pe"})
	err := <-r.run(context.Background(), r.config("testpass"))
	if !errors.Is(err, ErrTunnelAuth) || !strings.Contains(err.Error(), "tunnel authentication failed: wrong secret?") {
		t.Errorf("Run: %v, want %v", err, ErrTunnelAuth)
	}
}
