package main

import (
	"context"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/braid-router/braid/facts"
	"github.com/braid-router/braid/internal/nstest"
	"github.com/braid-router/braid/lab"
	"github.com/braid-router/braid/lab/labtest"
	"github.com/braid-router/braid/reconcile"
	"github.com/braid-router/braid/session"
)

// raLearnt returns isp2's slaac and router6 facts in a status.
func raLearnt(st reconcile.Status) (addr *facts.SLAAC, router *facts.Router6) {
	for _, e := range st.Facts.Entries {
		if e.Owner != "ra/isp2" {
			continue
		}
		if e.Fact.SLAAC != nil {
			addr = e.Fact.SLAAC
		}
		if e.Fact.Router6 != nil {
			router = e.Fact.Router6
		}
	}
	return addr, router
}

// pokeUntil reloads isp2's radvd with conf (it advertises at once) every
// few seconds until cond holds, for up to a minute.
func pokeUntil(t *testing.T, l *lab.Lab, d *daemon, conf, what string, cond func(reconcile.Status) bool) reconcile.Status {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		if err := l.Reload(lab.ISP2AdvertsProcess, conf); err != nil {
			t.Fatal(err)
		}
		poked := time.Now()
		for time.Since(poked) < 5*time.Second {
			if st, ok := d.status(); ok && cond(st) {
				return st
			}
			if time.Now().After(deadline) {
				st, _ := d.status()
				t.Fatalf("timed out waiting for %s; last status: %+v\nlogs:\n%s", what, st, d.logs.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// TestRALabSpecInTheLab: `braid run` of specs/lab-ra.yaml in a lab learns
// isp2's address, default router and resolver from radvd's adverts and
// routes with them as with a static address; a router lifetime of zero
// takes the default routes away and keeps the address; a restarted
// daemon keeps the address in place; destroy removes it.
func TestRALabSpecInTheLab(t *testing.T) {
	l := labtest.New(t)
	b := labBoxOf(t, l)
	d := b.startDaemon("-f", "../../specs/lab-ra.yaml")
	prefix := netip.MustParsePrefix(lab.WAN2PrefixV6)
	st := d.within(2*time.Minute, "isp2's address, router and resolver learnt and converged", func(st reconcile.Status) bool {
		a, r := raLearnt(st)
		return converged(st) && a != nil && r != nil && len(a.DNS) > 0 && len(st.Notes) == 0
	})
	addr, router := raLearnt(st)
	if !prefix.Contains(addr.Address.Addr()) || addr.Address.Bits() != 64 || addr.Link != lab.BoxWAN2Dev {
		t.Fatalf("address %s on %s, want one in %s on wan2", addr.Address, addr.Link, prefix)
	}
	if addr.DNS[0].Addr != netip.MustParseAddr(lab.ISP2ResolverV6) {
		t.Errorf("resolvers %+v, want %s", addr.DNS, lab.ISP2ResolverV6)
	}
	a := addr.Address.Addr().String()
	gw := router.Router.String()
	if !router.Router.IsLinkLocalUnicast() {
		t.Errorf("router %s, want isp2's link-local address", gw)
	}
	// What a static address and gateway would give.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-6", "addr", "show", "dev", "wan2", "scope", "global"}, a + "/64"},
		{[]string{"-6", "route", "show", "table", "main", "default"}, "via " + gw + " dev wan2 proto 98 metric 20"},
		{[]string{"-6", "route", "show", "table", "7102", "default"}, "via " + gw + " dev wan2 proto 98 metric 1024"},
		{[]string{"-6", "route", "show", "table", "7102"}, "2001:db8:102::/64 dev wan2 proto 98 metric 256"},
		{[]string{"-6", "route", "show", "table", "7100"}, "2001:db8:ffff:1::/64 via " + gw + " dev wan2 proto 98"},
		{[]string{"-6", "rule", "show"}, "from " + a + " lookup 7102 proto 98"},
		{[]string{"mptcp", "endpoint", "show"}, a + " id"},
	} {
		if got := b.ip(c.args...); !strings.Contains(got, c.want) {
			t.Errorf("ip %s lacks %q:\n%s", strings.Join(c.args, " "), c.want, got)
		}
	}
	if got := strings.TrimSpace(nstest.In(t, b.ns, "sysctl", "-n", "net.ipv6.conf.wan2.accept_ra")); got != "0" {
		t.Errorf("wan2's accept_ra = %s, want 0", got)
	}
	if got := b.ip("-6", "route", "show", "table", "all", "proto", "ra"); got != "" {
		t.Errorf("kernel routes from the adverts:\n%s", got)
	}
	whoami := func(server, bind string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		seen, err := l.Whoami(ctx, lab.RoleBox, "tcp", server, bind)
		if err != nil {
			return "error: " + err.Error()
		}
		return seen.Addr().String()
	}
	if got := whoami("[2001:db8:ffff::80]:7", a); got != a {
		t.Errorf("from the SLAAC address the server saw %s", got)
	}
	if got := whoami("[2001:db8:ffff:1::80]:7", ""); got != a {
		t.Errorf("the routes: destination via isp2: the server saw %s, want %s", got, a)
	}
	// What status shows.
	out := b.must(0, "status").stdout
	for _, w := range []string{"running     session[ra/isp2]", "address " + a + "/64 valid until", "router " + gw + "%wan2 until",
		"dns " + lab.ISP2ResolverV6, "slaac   uplink/isp2", "router6 uplink/isp2", "default router " + gw + "%wan2"} {
		if !strings.Contains(out, w) {
			t.Errorf("status lacks %q:\n%s", w, out)
		}
	}

	// A router lifetime of zero: the default routes go, the address, its
	// routes and its rule stay.
	pokeUntil(t, l, d, lab.ISP2Adverts(0), "the router gone", func(st reconcile.Status) bool {
		a, r := raLearnt(st)
		return converged(st) && a != nil && r == nil
	})
	d.until("isp2's default routes gone", func(st reconcile.Status) bool {
		return converged(st) && !strings.Contains(b.ip("-6", "route", "show", "table", "all", "default"), "dev wan2")
	})
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-6", "addr", "show", "dev", "wan2", "scope", "global"}, a + "/64"},
		{[]string{"-6", "route", "show", "table", "7102"}, "2001:db8:102::/64 dev wan2"},
		{[]string{"-6", "rule", "show"}, "from " + a + " lookup 7102"},
	} {
		if got := b.ip(c.args...); !strings.Contains(got, c.want) {
			t.Errorf("after a router lifetime of zero, ip %s lacks %q:\n%s", strings.Join(c.args, " "), c.want, got)
		}
	}
	if got := b.ip("-6", "route", "show", "default"); !strings.Contains(got, "via 2001:db8:101::1 dev wan1") {
		t.Errorf("isp1's IPv6 default route went too:\n%s", got)
	}
	pokeUntil(t, l, d, lab.ISP2Adverts(lab.ISP2RouterLifetime), "the router back", func(st reconcile.Status) bool {
		_, r := raLearnt(st)
		return converged(st) && r != nil && strings.Contains(b.ip("-6", "route", "show", "table", "main", "default"), "dev wan2")
	})

	// A restart: the address is never removed, and is the same.
	noRemovals := b.watchRemovals()
	d.stop(syscall.SIGTERM)
	d = b.startDaemon("-f", "../../specs/lab-ra.yaml")
	st = d.within(2*time.Minute, "the restarted daemon running the RA session", func(st reconcile.Status) bool {
		s, ok := sessionIn(st, "session[ra/isp2]")
		a2, r := raLearnt(st)
		return converged(st) && ok && s.State == session.Running && a2 != nil && r != nil
	})
	if a2, _ := raLearnt(st); a2.Address != addr.Address {
		t.Errorf("after a restart the address is %s, want %s", a2.Address, addr.Address)
	}
	// Nothing removed: neither the address nor the routes through the
	// router (its fact outlived the process too).
	noRemovals("the restart")

	// destroy removes the address and puts accept_ra back.
	d.stop(syscall.SIGTERM)
	b.must(0, "destroy", "--yes")
	if got := b.ip("-6", "addr", "show", "dev", "wan2", "scope", "global"); got != "" {
		t.Errorf("after destroy:\n%s", got)
	}
}

// The kernel's accept_ra on an RA uplink is off while braid runs it, and
// destroy puts back the value braid found.
func TestRAUplinkAcceptRARestored(t *testing.T) {
	b := newBox(t)
	nstest.In(t, b.ns, "sysctl", "-qw", "net.ipv6.conf.wan2.accept_ra=2")
	spec := writeSpec(t, strings.Replace(labSpec, "ipv6: {static: {address: 2001:db8:102::2/64, gateway: 2001:db8:102::1}}", "ipv6: {ra: {}}", 1))
	plan := b.must(2, "plan", "-f", spec).stdout
	for _, w := range []string{"~ sysctl[net.ipv6.conf.wan2.accept_ra]  value: 2 -> 0", "* session[ra/isp2]  uplink=isp2 interface=wan2"} {
		if !strings.Contains(plan, w) {
			t.Errorf("plan lacks %q:\n%s", w, plan)
		}
	}
	b.must(0, "apply", "-f", spec)
	if got := strings.TrimSpace(nstest.In(t, b.ns, "sysctl", "-n", "net.ipv6.conf.wan2.accept_ra")); got != "0" {
		t.Errorf("accept_ra = %s after apply, want 0", got)
	}
	b.must(0, "plan", "-f", spec)
	b.must(0, "destroy", "--yes")
	if got := strings.TrimSpace(nstest.In(t, b.ns, "sysctl", "-n", "net.ipv6.conf.wan2.accept_ra")); got != "2" {
		t.Errorf("accept_ra = %s after destroy, want 2 as found", got)
	}
}
