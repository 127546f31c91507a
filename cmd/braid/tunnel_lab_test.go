package main

import (
	"context"
	"net/netip"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/braid-router/braid/facts"
	"github.com/braid-router/braid/internal/lnstest"
	"github.com/braid-router/braid/internal/nstest"
	"github.com/braid-router/braid/lab"
	"github.com/braid-router/braid/lab/labtest"
	"github.com/braid-router/braid/reconcile"
	"github.com/braid-router/braid/session"
)

// The 6PE tunnel against the real LNS (xl2tpd, pppd and Kea in a QEMU
// guest behind the lab's isp1): specs/lab-6pe.yaml, whose login is made
// of isp1's lease and the MAC address the spec gives wan1.
const (
	tunnelSession = "session[l2tp/sixpe]"
	dhcp6Session  = "session[dhcp6/sixpe]"
	// sixpeLogin is the login specs/lab-6pe.yaml makes: its template
	// filled in with the lab ONT's lease and the spec's MAC address.
	sixpeLogin = "dhcp/" + lab.BoxWAN1V4 + "@0024d4aabbcc"
	// pppPasswordEnv holds the PPP password of specs/lab-6pe.yaml.
	pppPasswordEnv = "BRAID_LAB_PPP_PASSWORD"
)

// delegatedFrom is where the LNS delegates from.
var delegatedFrom = netip.MustParsePrefix(labtest.LNSDelegated)

// sixpeLab builds a lab, its box and the real LNS behind its isp1, with
// o's settings (the login specs/lab-6pe.yaml makes when o.User is empty),
// and the box's daemon environment with password.
func sixpeLab(t *testing.T, o lnstest.Options, password string) (*lab.Lab, *box, *labtest.LNS) {
	t.Helper()
	nstest.RequireBinary(t, "dnsmasq")
	l := labtest.New(t)
	if o.User == "" {
		o.User = sixpeLogin
	}
	if o.Pass == "" {
		o.Pass = "braid-lab-pass"
	}
	if password == "" {
		password = o.Pass
	}
	n := labtest.StartLNS(t, l, o)
	b := labBoxOf(t, l)
	b.env = append(b.env, pppPasswordEnv+"="+password)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("LNS console:\n%s", n.Log())
		}
	})
	return l, b, n
}

// tunnelUp waits for the tunnel's link and a prefix delegated over it in
// 2001:db8:e000::/40, converged, and returns them.
func (d *daemon) tunnelUp() (facts.Link, facts.Prefix, reconcile.Status) {
	d.b.t.Helper()
	var lk facts.Link
	var p facts.Prefix
	st := d.untilWithin("the tunnel up with a delegated prefix", 3*time.Minute, func(st reconcile.Status) bool {
		l, okl := factOf(st, func(f facts.Fact) *facts.Link { return f.Link })
		pr, okp := factOf(st, func(f facts.Fact) *facts.Prefix { return f.Prefix })
		s, _ := sessionIn(st, tunnelSession)
		if !okl || !okp || s.State != session.Running || !converged(st) {
			return false
		}
		lk, p = *l, *pr
		return p.For == "tunnel/sixpe" && delegatedFrom.Contains(p.Prefix.Addr()) && lk.Name == "sixpe"
	})
	return lk, p, st
}

// factOf returns the first fact of a kind in st.
func factOf[T any](st reconcile.Status, get func(facts.Fact) *T) (*T, bool) {
	for _, e := range st.Facts.Entries {
		if v := get(e.Fact); v != nil {
			return v, true
		}
	}
	return nil, false
}

// lanAddrsIn returns the LAN client's global addresses in p (formed by
// SLAAC from braid's adverts).
func lanAddrsIn(t *testing.T, l *lab.Lab, p netip.Prefix) []netip.Addr {
	t.Helper()
	out, err := l.Run(context.Background(), lab.RoleLAN, "ip", "-6", "-o", "addr", "show", "dev", lab.LANDev, "scope", "global")
	if err != nil {
		t.Fatal(err)
	}
	var as []netip.Addr
	for _, m := range regexp.MustCompile(`inet6 ([0-9a-f:]+)/64`).FindAllStringSubmatch(out, -1) {
		if a, err := netip.ParseAddr(m[1]); err == nil && p.Contains(a) {
			as = append(as, a)
		}
	}
	return as
}

// reachesServer waits until the LAN client, from its address in the
// prefix delegated over the tunnel now, reaches the IPv6 server in the
// Internet core, which sees that address (nothing but the LNS routes the
// prefix back), and returns the address and the prefix.
func reachesServer(t *testing.T, l *lab.Lab, d *daemon) (netip.Addr, netip.Prefix) {
	t.Helper()
	var from netip.Addr
	var prefix netip.Prefix
	server := netip.AddrPortFrom(netip.MustParseAddr(lab.ServerV6), lab.WhoamiPort).String()
	d.untilWithin("the LAN client reaching the IPv6 server from the delegated prefix", 2*time.Minute, func(st reconcile.Status) bool {
		p, ok := factOf(st, func(f facts.Fact) *facts.Prefix { return f.Prefix })
		if !ok || p.For != "tunnel/sixpe" {
			return false
		}
		for _, a := range lanAddrsIn(t, l, p.Prefix) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			seen, err := l.Whoami(ctx, lab.RoleLAN, "tcp", server, netip.AddrPortFrom(a, 0).String())
			cancel()
			if err == nil && seen.Addr() == a {
				from, prefix = a, p.Prefix
				return true
			}
		}
		return false
	})
	return from, prefix
}

// The story: `braid run` with a tunnels: entry brings the tunnel
// up against the real LNS with the templated login, gets a prefix, the
// LAN's client takes an address in it from braid's adverts and reaches
// the IPv6 server from it; what crosses isp1 is L2TP; while the LNS is
// away, the prefix has no route out (no leak by another uplink), and the
// tunnel comes back with it; braid restarted gets the same prefix.
func TestRunTunnelWithTheRealLNS(t *testing.T) {
	l, b, n := sixpeLab(t, lnstest.Options{}, "")
	nstest.RequireBinary(t, "tshark")
	bringUp := captureUDP(t, l.NS(lab.RoleISP1), lab.ISPDownDev)
	d := b.startDaemon("-f", "../../specs/lab-6pe.yaml")
	d.bound(lab.BoxWAN1V4)
	lk, p, st := d.tunnelUp()
	t.Logf("tunnel link %s %v, prefix %s", lk.Name, lk.Addresses, p.Prefix)
	s, _ := sessionIn(st, tunnelSession)
	for _, w := range []string{"LNS " + labtest.LNSAddr, "tunnel ", "session ", "login " + sixpeLogin} {
		if !strings.Contains(s.Detail, w) {
			t.Errorf("status of the tunnel %q does not say %q", s.Detail, w)
		}
	}
	// The LNS saw braid's login.
	if c := n.Log(); !strings.Contains(c, sixpeLogin) {
		t.Errorf("the LNS never saw the login %s", sixpeLogin)
	}
	from, inUse := reachesServer(t, l, d)
	if inUse != p.Prefix {
		t.Errorf("the LAN reached the server from %s, in %s, not in the prefix delegated, %s", from, inUse, p.Prefix)
	}
	// tshark finds nothing wrong with a frame braid sent during the whole
	// bring-up.
	if p := bringUp.problems("ip.src == " + lab.BoxWAN1V4); p != "" {
		t.Errorf("tshark flags braid's frames on isp1:\n%s", p)
	}
	// What crosses isp1 for the LAN is L2TP: the LAN client's packets
	// inside PPP inside L2TP inside UDP, both ways.
	lanTraffic := captureUDP(t, l.NS(lab.RoleISP1), lab.ISPDownDev)
	reachesServer(t, l, d)
	for _, dir := range []string{"ipv6.src == " + from.String(), "ipv6.dst == " + from.String()} {
		if got := lanTraffic.summary("l2tp && ppp && tcp && " + dir); got == "" {
			t.Errorf("no TCP in L2TP with %s on isp1:\n%s", dir, lanTraffic.summary("udp"))
		}
	}
	status := b.must(0, "status").stdout
	for _, w := range []string{tunnelSession, p.Prefix.String()} {
		if !strings.Contains(status, w) {
			t.Errorf("braid status does not show %q:\n%s", w, status)
		}
	}

	// The LNS goes away under the tunnel: braid notices (LCP echoes), and
	// the delegated prefix's traffic has no route then, rather than
	// leaving by isp1, whose IPv6 default route is in the main table.
	n.Stop()
	d.untilWithin("the tunnel down after the LNS", 2*time.Minute, func(st reconcile.Status) bool {
		s, _ := sessionIn(st, tunnelSession)
		_, up := factOf(st, func(f facts.Fact) *facts.Link { return f.Link })
		return s.Restarts > 0 && !up && converged(st)
	})
	route, err := exec.Command("ip", "-n", b.ns, "-6", "route", "get", lab.ServerV6, "from", from.String(), "iif", lab.BoxLANDev).CombinedOutput()
	// The unreachable default of the tunnel's table: EHOSTUNREACH.
	if err == nil || !strings.Contains(string(route), "No route to host") {
		t.Errorf("with the tunnel down, the LAN's delegated address is routed: %v\n%s", err, route)
	}
	// It comes back: braid starts the tunnel again, and the LAN gets
	// through again.
	n.Again()
	d.tunnelUp()
	_, p2 := reachesServer(t, l, d)

	// braid restarted gets the same prefix back. The test LNS delegates
	// from a pool of its PPP unit's (ppp0, ppp1, ...), where an ISP's
	// keeps a customer's prefix: the old session's unit must be free
	// again, as it is once pppd has ended it (the LNS's restart timer
	// after braid's Terminate-Request), for the new one to take it.
	skip := len(n.Log())
	d.stop(syscall.SIGTERM)
	n.WaitLog(t, `pppd\[[0-9]+\]: Exit\.`, skip, time.Minute)
	d = b.startDaemon("-f", "../../specs/lab-6pe.yaml")
	d.tunnelUp()
	if _, p3 := reachesServer(t, l, d); p3 != p2 {
		t.Errorf("after a restart of braid, prefix %s, want %s again", p3, p2)
	}
}

// An LNS that logs in by PAP, does not challenge braid's side of the
// tunnel and offers IPv4 too (IPCP, which braid declines) still gives
// the LAN its IPv6.
func TestRunTunnelPAPNoChallengeIPv4(t *testing.T) {
	l, b, n := sixpeLab(t, lnstest.Options{Auth: "pap", NoChallenge: true, IPv4: true}, "")
	d := b.startDaemon("-f", "../../specs/lab-6pe.yaml")
	d.bound(lab.BoxWAN1V4)
	_, _, st := d.tunnelUp()
	if s, _ := sessionIn(st, tunnelSession); !strings.Contains(s.Detail, "(PAP)") {
		t.Errorf("status %q does not say PAP", s.Detail)
	}
	reachesServer(t, l, d)
	if !strings.Contains(n.Log(), "PAP") {
		t.Error("the LNS did not log in by PAP")
	}
}

// A wrong tunnel secret and a wrong PPP password are each said in status
// in words a person acts on, and retried with the supervisor's backoff,
// not in a tight loop: the LNS sees about as many attempts as braid
// counts restarts.
func TestRunTunnelRefused(t *testing.T) {
	for _, tt := range []struct {
		name     string
		lns      lnstest.Options
		password string
		words    string
		attempts *regexp.Regexp
	}{
		{name: "wrong secret", lns: lnstest.Options{Secret: "not-6pe"}, words: "tunnel authentication failed: wrong secret?",
			attempts: regexp.MustCompile(`message type 1 \(Start-Control-Connection-Request\)`)},
		{name: "wrong password", password: "wrong", words: "PPP authentication refused",
			attempts: regexp.MustCompile(`rcvd \[(CHAP Response|PAP AuthReq)`)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, b, n := sixpeLab(t, tt.lns, tt.password)
			d := b.startDaemon("-f", "../../specs/lab-6pe.yaml")
			st := d.untilWithin("the tunnel failing twice", 2*time.Minute, func(st reconcile.Status) bool {
				s, _ := sessionIn(st, tunnelSession)
				return s.Restarts >= 2 && strings.Contains(s.LastError, tt.words)
			})
			s, _ := sessionIn(st, tunnelSession)
			status := b.must(0, "status").stdout
			if !strings.Contains(status, tt.words) {
				t.Errorf("braid status does not say %q:\n%s", tt.words, status)
			}
			if got := len(tt.attempts.FindAllString(n.Log(), -1)); got > 3*(s.Restarts+2) {
				t.Errorf("the LNS saw %d attempts for %d restarts: a tight loop", got, s.Restarts)
			}
		})
	}
}

// udpCapture is tcpdump writing the UDP of a link to a file, each packet
// as it comes, for tshark to decode afterwards. Immediate mode matters:
// without it the kernel hands packets over a block of its ring at a time
// (or after a timeout), and those of the last block are lost when the
// capture stops, which are the very packets a test just made.
type udpCapture struct {
	t    *testing.T
	cmd  *exec.Cmd
	file string
	out  *nstest.SyncBuffer
	done bool
}

// captureUDP starts capturing UDP on link dev of namespace ns, and
// returns once tcpdump listens.
func captureUDP(t *testing.T, ns, dev string) *udpCapture {
	t.Helper()
	nstest.RequireBinary(t, "tcpdump")
	nstest.RequireBinary(t, "tshark")
	c := &udpCapture{t: t, file: filepath.Join(t.TempDir(), dev+".pcap"), out: &nstest.SyncBuffer{}}
	c.cmd = exec.Command("ip", "netns", "exec", ns, "tcpdump", "--immediate-mode", "-n", "-U", "-Z", "root", "-i", dev, "-w", c.file, "udp")
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.stop)
	mustWait(t, "tcpdump to listen", func() bool { return strings.Contains(c.out.String(), "listening on") })
	return c
}

func (c *udpCapture) stop() {
	if !c.done {
		c.done = true
		c.cmd.Process.Signal(syscall.SIGTERM)
		c.cmd.Wait()
	}
}

// tshark stops the capture and decodes it, UDP port 1701 as L2TP
// whichever port the LNS answers from.
func (c *udpCapture) tshark(args ...string) string {
	c.t.Helper()
	c.stop()
	out, err := exec.Command("tshark", append([]string{"-n", "-r", c.file, "-d", "udp.port==1701,l2tp"}, args...)...).Output()
	if err != nil {
		c.t.Fatalf("tshark: %v\n%s", err, c.out)
	}
	return strings.TrimSpace(string(out))
}

// summary lists the frames matching a display filter, one a line.
func (c *udpCapture) summary(filter string) string { return c.tshark("-Y", filter) }

// problems lists the frames matching filter that tshark finds malformed
// or warns or errs about (its expert info).
func (c *udpCapture) problems(filter string) string {
	return c.tshark("-Y", "("+filter+") && (_ws.malformed || _ws.expert.severity >= 0x00600000)")
}
