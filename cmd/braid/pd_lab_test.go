package main

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
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

// delegatedIn returns isp2's delegated prefix in a status.
func delegatedIn(st reconcile.Status) *facts.Prefix {
	for _, e := range st.Facts.Entries {
		if e.Owner == "dhcp6/isp2" && e.Fact.Prefix != nil {
			return e.Fact.Prefix
		}
	}
	return nil
}

// nth64 is the n-th /64 of a prefix no longer than /56 (the lab's).
func nth64(p netip.Prefix, n byte) netip.Prefix {
	b := p.Masked().Addr().As16()
	b[7] |= n
	return netip.PrefixFrom(netip.AddrFrom16(b), 64)
}

// hostIn is the address with interface identifier id in a /64.
func hostIn(p netip.Prefix, id byte) netip.Addr {
	b := p.Addr().As16()
	b[15] = id
	return netip.AddrFrom16(b)
}

// TestPDLabSpecInTheLab: `braid run` of specs/lab-pd.yaml gets a /56 from
// isp2's Kea; the LAN gets <prefix>:1::1/64, the rest of the prefix is
// unreachable, and a LAN host with an address in that /64 reaches the
// Internet server from it through isp2; a restarted braid keeps the
// prefix and the LAN address without removing anything; the spec without
// the delegation releases it (Kea logs the release) and the LAN address
// goes; tshark reads what braid sent with no malformed packet and no
// expert warning.
func TestPDLabSpecInTheLab(t *testing.T) {
	l := labtest.New(t)
	b := labBoxOf(t, l)
	nstest.RequireBinary(t, "tshark")
	pcap := filepath.Join(t.TempDir(), "isp2.pcapng")
	dumpOut := &nstest.SyncBuffer{}
	dump := exec.Command("ip", "netns", "exec", l.NS(lab.RoleISP2), "dumpcap", "-q", "-i", lab.ISPDownDev, "-f", "udp port 546 or udp port 547", "-w", pcap)
	dump.Stdout, dump.Stderr = dumpOut, dumpOut
	if err := dump.Start(); err != nil {
		t.Fatal(err)
	}
	stopDump := func() {
		if dump.ProcessState == nil {
			dump.Process.Signal(syscall.SIGINT)
			dump.Wait()
		}
	}
	t.Cleanup(stopDump)
	mustWait(t, "dumpcap to capture", func() bool { return strings.Contains(dumpOut.String(), "Capturing on") })

	body, err := os.ReadFile("../../specs/lab-pd.yaml")
	if err != nil {
		t.Fatal(err)
	}
	spec := writeSpec(t, string(body))
	d := b.startDaemon("-f", spec)
	st := d.within(2*time.Minute, "a prefix delegated and the LAN converged", func(st reconcile.Status) bool {
		return converged(st) && delegatedIn(st) != nil && len(st.Notes) == 0
	})
	p := delegatedIn(st)
	pool := netip.MustParsePrefix(lab.ISP2DelegationPool)
	if !pool.Contains(p.Prefix.Addr()) || p.Prefix.Bits() != lab.ISP2DelegatedLen || p.Link != lab.BoxWAN2Dev {
		t.Fatalf("prefix %s on %s, want a /%d of %s on wan2", p.Prefix, p.Link, lab.ISP2DelegatedLen, pool)
	}
	sub := nth64(p.Prefix, 1)
	boxAddr := hostIn(sub, 1)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-6", "addr", "show", "dev", "lan0"}, boxAddr.String() + "/64"},
		{[]string{"-6", "route", "show", "table", "main"}, sub.String() + " dev lan0 proto 98 metric 256"},
		{[]string{"-6", "route", "show", "table", "main"}, "unreachable " + p.Prefix.String() + " dev lo proto 98 metric 1024"},
		{[]string{"-6", "rule", "show"}, "7150:\tfrom " + p.Prefix.String() + " lookup 7102 proto 98"},
	} {
		if got := b.ip(c.args...); !strings.Contains(got, c.want) {
			t.Errorf("ip %s lacks %q:\n%s", strings.Join(c.args, " "), c.want, got)
		}
	}
	out := b.must(0, "status").stdout
	for _, w := range []string{"running     session[dhcp6/isp2]", "prefix " + p.Prefix.String() + " preferred for ",
		"from server " + p.Server, "prefix  uplink/isp2", p.Prefix.String() + " on wan2"} {
		if !strings.Contains(out, w) {
			t.Errorf("status lacks %q:\n%s", w, out)
		}
	}

	// The ISP routes the prefix to the box; a LAN host with an address
	// in the LAN's /64 reaches the Internet server from it.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := l.RouteToBox(ctx, lab.RoleISP2, lab.BoxWAN2Dev, p.Prefix); err != nil {
		t.Fatal(err)
	}
	client := hostIn(sub, 0x10)
	nstest.In(t, l.NS(lab.RoleLAN), "ip", "-6", "addr", "add", client.String()+"/64", "dev", lab.LANDev, "nodad")
	mustWait(t, "the server to see the LAN host's delegated address", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		seen, err := l.Whoami(ctx, lab.RoleLAN, "tcp", "[2001:db8:ffff::80]:7", client.String())
		return err == nil && seen.Addr() == client
	})
	// The unused rest of the prefix is unreachable at the box: no loop
	// between the box's default route and the ISP's route to the box.
	unused := hostIn(nth64(p.Prefix, 2), 1)
	pingOut, _ := exec.Command("ip", "netns", "exec", l.NS(lab.RoleLAN), "ping", "-6", "-n", "-c", "1", "-W", "5", unused.String()).CombinedOutput()
	if !strings.Contains(string(pingOut), "Destination unreachable") || strings.Contains(string(pingOut), "Time exceeded") {
		t.Errorf("ping %s from the LAN: want the box's destination unreachable:\n%s", unused, pingOut)
	}

	// A restart: the same prefix, nothing removed.
	noRemovals := b.watchRemovals()
	d.stop(syscall.SIGTERM)
	d = b.startDaemon("-f", spec)
	st = d.within(2*time.Minute, "the restarted daemon holding the prefix", func(st reconcile.Status) bool {
		s, ok := sessionIn(st, "session[dhcp6/isp2]")
		return converged(st) && ok && s.State == session.Running && strings.Contains(s.Detail, "renews in") && delegatedIn(st) != nil
	})
	if again := delegatedIn(st); again.Prefix != p.Prefix {
		t.Errorf("after a restart the prefix is %s, want %s", again.Prefix, p.Prefix)
	}
	noRemovals("the restart")
	keaLog := filepath.Join(l.Dir, "procs", lab.DHCP6Process+".log")
	if b, _ := os.ReadFile(keaLog); strings.Contains(string(b), "DHCP6_RELEASE_PD") {
		t.Errorf("braid released the prefix on a restart:\n%s", b)
	}

	// The spec without the delegation: the prefix is released, and the
	// LAN's address from it goes.
	without := strings.Replace(strings.Replace(string(body), "        dhcpv6: {prefixDelegation: true}\n", "", 1),
		"    ipv6:\n      fromUplink: isp2\n      subnet: 1\n", "", 1)
	if err := os.WriteFile(spec, []byte(strings.Replace(without, "ra:\n", "ra: {}\n", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	d.cmd.Process.Signal(syscall.SIGHUP)
	d.within(time.Minute, "the delegation gone", func(st reconcile.Status) bool {
		_, running := sessionIn(st, "session[dhcp6/isp2]")
		return converged(st) && !running && delegatedIn(st) == nil
	})
	mustWait(t, "Kea to log the release", func() bool {
		b, _ := os.ReadFile(keaLog)
		return strings.Contains(string(b), "DHCP6_RELEASE_PD") && strings.Contains(string(b), p.Prefix.Addr().String())
	})
	if got := b.ip("-6", "addr", "show", "dev", "lan0"); strings.Contains(got, boxAddr.String()) {
		t.Errorf("the LAN address %s stayed:\n%s", boxAddr, got)
	}
	if got := b.ip("-6", "route", "show", "table", "all", "type", "unreachable"); strings.Contains(got, p.Prefix.String()) {
		t.Errorf("the unreachable route stayed:\n%s", got)
	}

	mustWait(t, "the capture to hold the Release", func() bool {
		return strings.TrimSpace(tshark("-r", pcap, "-Y", "dhcpv6.msgtype == 8")) != ""
	})
	stopDump()
	if bad := strings.TrimSpace(tshark("-r", pcap, "-Y", "_ws.malformed || _ws.expert")); bad != "" {
		t.Errorf("tshark flags:\n%s", bad)
	}
	types := tshark("-r", pcap, "-Y", "udp.srcport == 546", "-T", "fields", "-e", "dhcpv6.msgtype")
	for _, typ := range []string{"1", "3", "6", "8"} { // Solicit, Request, Rebind (the restart), Release
		if !strings.Contains("\n"+types, "\n"+typ+"\n") {
			t.Errorf("braid sent no DHCPv6 message of type %s: %q", typ, types)
		}
	}
}
