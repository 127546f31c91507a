package main

import (
	"context"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/braid-router/braid/lab"
	"github.com/braid-router/braid/lab/labtest"
	"github.com/braid-router/braid/reconcile"
	"github.com/braid-router/braid/session"
	"github.com/braid-router/braid/sessions/proxy"
)

// Servers beyond the uplinks that aggregation.bypass names, added to the
// lab's Internet core by TestRunSteersLANTCPIntoTheProxy.
const (
	bypassedV4 = "198.51.100.90"
	bypassedV6 = "2001:db8:ffff::90"
)

// proxySpec is specs/lab.yaml with the transparent proxy on: the peer at
// its address in the lab, the bypassed servers going direct.
func proxySpec(t *testing.T) string {
	return readFile(t, "../../specs/lab.yaml") + `  aggregation:
    peer:
      address: ` + lab.PeerV4 + `:` + strconv.Itoa(lab.PeerPort) + `
      key: {value: not-a-secret}
    tcp: proxy
    bypass: [` + bypassedV4 + `/32, "` + bypassedV6 + `/128"]
`
}

// ask connects from a role of the lab to addr and returns the line the
// server answers with.
func ask(l *lab.Lab, role lab.Role, addr string) (string, error) {
	var line string
	err := l.Do(role, func() error {
		c, err := net.DialTimeout("tcp", addr, 3*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		b, err := io.ReadAll(io.LimitReader(c, 256))
		line = strings.TrimSpace(string(b))
		return err
	})
	return line, err
}

// within polls the daemon's status until cond holds, for up to timeout.
func (d *daemon) within(timeout time.Duration, what string, cond func(reconcile.Status) bool) reconcile.Status {
	d.b.t.Helper()
	return d.untilWithin(what, timeout, cond)
}

// steering reports whether the daemon's last pass converged with the
// proxy running and its steering in place.
func steering(st reconcile.Status) bool {
	s, ok := sessionIn(st, "session[proxy/aggregation]")
	if !converged(st) || !ok || s.State != session.Running {
		return false
	}
	for _, o := range st.Objects {
		if o.Address == "nft.rule[inet braid prerouting_tproxy:tcp-v6]" {
			return true
		}
	}
	return false
}

// TestRunSteersLANTCPIntoTheProxy: with `braid run` and the stand-in proxy
// running, LAN TCP to a server beyond an uplink reaches the proxy's
// listener, with the destination the client asked for, in both families;
// a bypass destination, a routes: destination and the peer reach the real
// servers, and the WAN cannot reach the listener. After SIGTERM the
// steering is gone; after kill -9 it is still in the kernel but inert (no
// transparent socket listens), so LAN traffic takes plain routing; a CLI
// apply then removes it and says the proxy needs `braid run`; a daemon
// started again steers again.
func TestRunSteersLANTCPIntoTheProxy(t *testing.T) {
	l := labtest.New(t)
	b := labBoxOf(t, l)
	b.standIns(t)
	for _, a := range []string{bypassedV4 + "/32", bypassedV6 + "/128"} {
		if _, err := l.Run(context.Background(), lab.RoleInet, "ip", "addr", "add", a, "dev", "lo"); err != nil {
			t.Fatal(err)
		}
	}
	ap := func(a string, port int) string { return net.JoinHostPort(a, strconv.Itoa(port)) }
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := l.Start(ctx, lab.Process{Name: "bypassed", Role: lab.RoleInet,
		Serve: []string{"-whoami", ap(bypassedV4, lab.WhoamiPort), "-whoami", ap(bypassedV6, lab.WhoamiPort)}}); err != nil {
		t.Fatal(err)
	}
	// specs/lab.yaml forwards port 8080 of the uplinks to the LAN client.
	if err := l.Start(ctx, lab.Process{Name: "lansvc", Role: lab.RoleLAN,
		Serve: []string{"-whoami", ap(lab.LANClientV4, 8080), "-whoami", ap(lab.LANClientV6, 8080)}}); err != nil {
		t.Fatal(err)
	}
	spec := filepath.Join(t.TempDir(), "spec.yaml")
	if err := os.WriteFile(spec, []byte(proxySpec(t)), 0o644); err != nil {
		t.Fatal(err)
	}

	server4, server6 := ap(lab.ServerV4, lab.WhoamiPort), ap(lab.ServerV6, lab.WhoamiPort)
	// proxied says the stand-in answered for dst; direct that the real
	// server did and saw the client as from.
	proxied := func(what, dst string) {
		t.Helper()
		want := standInProxyBanner + "proxy/aggregation " + netip.MustParseAddrPort(dst).String()
		if got, err := ask(l, lab.RoleLAN, dst); got != want {
			t.Errorf("%s: LAN to %s answered %q (%v), want the stand-in proxy's %q", what, dst, got, err, want)
		}
	}
	direct := func(what, dst, from string) {
		t.Helper()
		got, err := ask(l, lab.RoleLAN, dst)
		if seen, perr := netip.ParseAddrPort(got); perr != nil || seen.Addr().String() != from {
			t.Errorf("%s: LAN to %s answered %q (%v), want the real server seeing %s", what, dst, got, err, from)
		}
	}
	plain := func(what string) {
		t.Helper()
		direct(what+", IPv4", server4, lab.BoxWAN1V4)
		direct(what+", IPv6", server6, lab.LANClientV6)
	}
	// The steering in the kernel, as nft and ip list it.
	inKernel := func() (chain, rule4, rule6, route4, route6 bool) {
		nft, _ := l.Run(context.Background(), lab.RoleBox, "nft", "list", "table", "inet", "braid")
		r4, r6 := b.ip("-4", "rule", "show"), b.ip("-6", "rule", "show")
		t4, t6 := b.ip("-4", "route", "show", "table", "7190"), b.ip("-6", "route", "show", "table", "7190")
		return strings.Contains(nft, "chain prerouting_tproxy"),
			strings.Contains(r4, "6900:\tfrom all fwmark 0x1c16 lookup 7190 proto 98"),
			strings.Contains(r6, "6900:\tfrom all fwmark 0x1c16 lookup 7190 proto 98"),
			strings.Contains(t4, "local default dev lo proto 98 scope host"),
			strings.Contains(t6, "local default dev lo proto 98 metric 1024")
	}

	d := b.startDaemon("-f", spec)
	st := d.within(60*time.Second, "the proxy running and its steering in place", steering)
	if s, _ := sessionIn(st, "session[proxy/aggregation]"); !strings.Contains(s.Detail, "port "+strconv.Itoa(proxy.Port)) {
		t.Errorf("the proxy session's status: %+v", s)
	}
	if c, r4, r6, t4, t6 := inKernel(); !c || !r4 || !r6 || !t4 || !t6 {
		t.Fatalf("steering in the kernel: chain %v, rules %v %v, routes %v %v", c, r4, r6, t4, t6)
	}
	// The probe before braid converged may have left the client's
	// neighbour entry for its gateway FAILED.
	if _, err := l.Run(context.Background(), lab.RoleLAN, "ip", "neigh", "flush", "all"); err != nil {
		t.Fatal(err)
	}
	proxied("IPv4", server4)
	proxied("IPv6", server6)
	direct("aggregation.bypass, IPv4", ap(bypassedV4, lab.WhoamiPort), lab.BoxWAN1V4)
	direct("aggregation.bypass, IPv6", ap(bypassedV6, lab.WhoamiPort), lab.LANClientV6)
	direct("a routes: destination", ap(lab.SteeredServerV4, lab.WhoamiPort), lab.BoxWAN2V4)
	// The peer's own address (its whoami, beside where braid's peer
	// listens) is never steered.
	direct("the peer", ap(lab.PeerV4, lab.WhoamiPort), lab.BoxWAN1V4)
	// A connection from outside to a port forward: the LAN host's replies
	// are not steered into the proxy (they are a connection's replies).
	for _, dst := range []string{ap(lab.BoxWAN1V4, 8080), ap(lab.LANClientV6, 8080)} {
		if got, err := ask(l, lab.RoleInet, dst); err != nil || strings.HasPrefix(got, standInProxyBanner) {
			t.Errorf("a port forward to %s while steering: %q (%v), want the LAN client's answer", dst, got, err)
		}
	}
	// The listener is the box's, on every address, but the WAN cannot
	// reach it: the input chain drops what arrives on an uplink.
	var wg sync.WaitGroup
	for _, a := range []string{lab.BoxWAN1V4, lab.BoxWAN1V6} {
		wg.Go(func() {
			if got, err := ask(l, lab.RoleISP1, ap(a, proxy.Port)); err == nil {
				t.Errorf("the WAN reached the proxy's listener at %s: %q", a, got)
			}
		})
	}
	wg.Wait()
	// A CLI plan while the daemon runs counts the steering as the
	// daemon's: no changes.
	if r := b.braid(nil, "plan", "-f", spec); r.code != 0 {
		t.Errorf("plan while the daemon steers: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// SIGTERM: the daemon withdraws the steering; routing stays.
	d.cmd.Process.Signal(syscall.SIGTERM)
	if err := d.cmd.Wait(); err != nil {
		t.Fatalf("braid run after SIGTERM: %v\n%s", err, d.logs.String())
	}
	if c, r4, r6, t4, t6 := inKernel(); c || r4 || r6 || t4 || t6 {
		t.Errorf("steering left after SIGTERM: chain %v, rules %v %v, routes %v %v", c, r4, r6, t4, t6)
	}
	plain("after SIGTERM")

	// kill -9: nothing withdraws the steering, and nothing needs to.
	d = b.startDaemon("-f", spec)
	d.within(60*time.Second, "the steering back", steering)
	proxied("IPv4, the daemon again", server4)
	d.cmd.Process.Kill()
	d.cmd.Wait()
	if c, r4, r6, t4, t6 := inKernel(); !c || !r4 || !r6 || !t4 || !t6 {
		t.Errorf("after kill -9 the steering should still be in the kernel (inert): chain %v, rules %v %v, routes %v %v", c, r4, r6, t4, t6)
	}
	plain("after kill -9, its rules inert")

	// A CLI apply removes what the dead daemon left, and says the proxy
	// needs `braid run`.
	r := b.must(0, "apply", "-f", spec)
	for _, want := range []string{
		"- nft.chain[inet braid prerouting_tproxy]",
		"- nft.rule[inet braid prerouting_tproxy:tcp-v4]",
		"- rule[inet pref 6900 fwmark 0x1c16]",
		"- route[7190 ::/0 metric 1024]",
		"* session[proxy/aggregation]",
		"need `braid run`",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("braid apply after kill -9 lacks %q:\n%s", want, r.stdout)
		}
	}
	if c, r4, r6, t4, t6 := inKernel(); c || r4 || r6 || t4 || t6 {
		t.Errorf("steering left after the CLI apply: chain %v, rules %v %v, routes %v %v", c, r4, r6, t4, t6)
	}
	plain("after the CLI apply")

	// A daemon started again steers again.
	d = b.startDaemon("-f", spec)
	d.within(60*time.Second, "the steering after a restart", steering)
	proxied("IPv4, a restarted daemon", server4)
	proxied("IPv6, a restarted daemon", server6)
}
