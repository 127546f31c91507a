package main

import (
	"context"
	"encoding/json"
	"net/netip"
	"os"
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

// TestAdvertiseInTheLab: `braid run` of specs/lab.yaml with
// lan.ipv6.advertise in a lab whose LAN client is the Linux kernel taking
// adverts (accept_ra 2): the client forms an address of its own in the
// LAN's /64, routes through the box's link-local address, and reaches a
// server in the Internet namespace from that address; when braid stops,
// its final advert takes the client's route through the box away.
func TestAdvertiseInTheLab(t *testing.T) {
	l := labtest.New(t)
	b := labBoxOf(t, l)
	lan := l.NS(lab.RoleLAN)
	nstest.In(t, lan, "sysctl", "-qw", "net.ipv6.conf."+lab.LANDev+".accept_ra=2")
	nstest.In(t, lan, "sysctl", "-qw", "net.ipv6.conf."+lab.LANDev+".autoconf=1")
	spec, err := os.ReadFile("../../specs/lab.yaml")
	if err != nil {
		t.Fatal(err)
	}
	const addrs = "    addresses: [192.168.50.1/24, 2001:db8:50::1/64]\n"
	if !strings.Contains(string(spec), addrs) {
		t.Fatalf("specs/lab.yaml's LAN has changed: %q not found", addrs)
	}
	path := writeSpec(t, strings.Replace(string(spec), addrs, addrs+"    ipv6: {advertise: true}\n", 1))
	d := b.startDaemon("-f", path)
	d.within(2*time.Minute, "the adverts running", func(st reconcile.Status) bool {
		s, ok := sessionIn(st, "session[advertise/lan]")
		return converged(st) && ok && s.State == session.Running
	})

	prefix := netip.MustParsePrefix(lab.LANPrefixV6)
	static := netip.MustParseAddr(lab.LANClientV6)
	var slaac netip.Addr
	var boxLL string
	deadline := time.Now().Add(2 * time.Minute)
	for !slaac.IsValid() || boxLL == "" {
		if time.Now().After(deadline) {
			t.Fatalf("the LAN client has no SLAAC address or no route through the box:\n%s\n%s\nlogs:\n%s",
				nstest.Run(t, "ip", "-n", lan, "-6", "addr"), nstest.Run(t, "ip", "-n", lan, "-6", "route"), d.logs.String())
		}
		time.Sleep(100 * time.Millisecond)
		var links []struct {
			AddrInfo []struct {
				Local string `json:"local"`
				Scope string `json:"scope"`
			} `json:"addr_info"`
		}
		if json.Unmarshal([]byte(nstest.Run(t, "ip", "-n", lan, "-j", "-6", "addr", "show", "dev", lab.LANDev)), &links) == nil && len(links) == 1 {
			for _, a := range links[0].AddrInfo {
				if ip, err := netip.ParseAddr(a.Local); err == nil && a.Scope == "global" && prefix.Contains(ip) && ip != static {
					slaac = ip
				}
			}
		}
		boxLL = raDefault(t, lan)
	}
	if !netip.MustParseAddr(boxLL).IsLinkLocalUnicast() {
		t.Errorf("the client's route from the adverts goes via %s, want the box's link-local address", boxLL)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	seen, err := l.Whoami(ctx, lab.RoleLAN, "tcp", "[2001:db8:ffff::80]:7", slaac.String())
	if err != nil || seen.Addr() != slaac {
		t.Errorf("from the SLAAC address %s the server saw %v, %v", slaac, seen, err)
	}
	out := b.must(0, "status").stdout
	for _, w := range []string{"running     session[advertise/lan]", lab.LANPrefixV6 + " valid", "default router for 30m0s"} {
		if !strings.Contains(out, w) {
			t.Errorf("status lacks %q:\n%s", w, out)
		}
	}

	d.stop(syscall.SIGTERM)
	waitLab(t, "the client's route through the box gone", func() bool { return raDefault(t, lan) == "" })
}

// raDefault returns the gateway of the LAN client's default route from
// router advertisements, or "".
func raDefault(t *testing.T, ns string) string {
	t.Helper()
	var routes []struct {
		Gateway  string `json:"gateway"`
		Protocol string `json:"protocol"`
	}
	if err := json.Unmarshal([]byte(nstest.Run(t, "ip", "-n", ns, "-j", "-6", "route", "show", "default")), &routes); err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		if r.Protocol == "ra" {
			return r.Gateway
		}
	}
	return ""
}

// waitLab polls cond until it holds, for up to a minute.
func waitLab(t *testing.T, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
