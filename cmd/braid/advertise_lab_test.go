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

	slaac, boxLL := lanSLAAC(t, lan, netip.MustParsePrefix(lab.LANPrefixV6), d)
	if !boxLL.IsLinkLocalUnicast() {
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

// lanSLAAC waits until the LAN client has an address of its own in
// prefix (not the lab's static one) and a default route from adverts, and
// returns them.
func lanSLAAC(t *testing.T, lan string, prefix netip.Prefix, d *daemon) (slaac, router netip.Addr) {
	t.Helper()
	static := netip.MustParseAddr(lab.LANClientV6)
	deadline := time.Now().Add(2 * time.Minute)
	for {
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
		if gw := raDefault(t, lan); gw != "" && slaac.IsValid() {
			return slaac, netip.MustParseAddr(gw)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the LAN client has no address in %s or no route from adverts:\n%s\n%s\nlogs:\n%s", prefix,
				nstest.Run(t, "ip", "-n", lan, "-6", "addr"), nstest.Run(t, "ip", "-n", lan, "-6", "route"), d.logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
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

// TestAdvertiseDelegatedInTheLab: `braid run` of specs/lab-pd.yaml with
// advertise: the LAN client forms an address by SLAAC in subnet 1 of the
// prefix isp2's Kea delegated, and, once isp2 routes the prefix to the
// box, reaches the Internet server from it through isp2; rdisc6 on the client reads the /64 with lifetimes within
// the delegation's, and the resolver the delegation named.
func TestAdvertiseDelegatedInTheLab(t *testing.T) {
	l := labtest.New(t)
	b := labBoxOf(t, l)
	nstest.RequireBinary(t, "rdisc6")
	lan := l.NS(lab.RoleLAN)
	nstest.In(t, lan, "sysctl", "-qw", "net.ipv6.conf."+lab.LANDev+".accept_ra=2")
	nstest.In(t, lan, "sysctl", "-qw", "net.ipv6.conf."+lab.LANDev+".autoconf=1")
	spec, err := os.ReadFile("../../specs/lab-pd.yaml")
	if err != nil {
		t.Fatal(err)
	}
	const subnet = "      subnet: 1\n"
	if !strings.Contains(string(spec), subnet) {
		t.Fatalf("specs/lab-pd.yaml's LAN has changed: %q not found", subnet)
	}
	d := b.startDaemon("-f", writeSpec(t, strings.Replace(string(spec), subnet, subnet+"      advertise: true\n", 1)))
	st := d.within(2*time.Minute, "a prefix delegated and advertised", func(st reconcile.Status) bool {
		s, ok := sessionIn(st, "session[advertise/lan]")
		return converged(st) && delegatedIn(st) != nil && ok && s.State == session.Running
	})
	p := delegatedIn(st)
	sub := nth64(p.Prefix, 1)
	slaac, boxLL := lanSLAAC(t, lan, sub, d)
	if !boxLL.IsLinkLocalUnicast() {
		t.Errorf("the client's route from the adverts goes via %s, want the box's link-local address", boxLL)
	}
	// The ISP routes the prefix to the box (the lab's Kea does not).
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := l.RouteToBox(ctx, lab.RoleISP2, lab.BoxWAN2Dev, p.Prefix); err != nil {
		t.Fatal(err)
	}
	mustWait(t, "the server to see the LAN client's SLAAC address "+slaac.String(), func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		seen, err := l.Whoami(ctx, lab.RoleLAN, "tcp", "[2001:db8:ffff::80]:7", slaac.String())
		return err == nil && seen.Addr() == slaac
	})
	out := strings.Join(strings.Fields(nstest.In(t, lan, "rdisc6", "-1", "-n", "-w", "3000", "-r", "5", lab.LANDev)), " ")
	wants := []string{"Prefix : " + sub.String(), "from " + boxLL.String()}
	for _, r := range p.DNS {
		wants = append(wants, "Recursive DNS server : "+r.String())
	}
	if len(p.DNS) == 0 {
		t.Error("the lab's Kea named no resolver: the RDNSS from the delegation is not checked")
	}
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Errorf("rdisc6 lacks %q:\n%s", w, out)
		}
	}
}
