package main

import (
	"context"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/braid-router/braid/internal/nstest"
	"github.com/braid-router/braid/lab"
	"github.com/braid-router/braid/lab/labtest"
	"github.com/braid-router/braid/reconcile"
)

// testLNSLab builds a lab for the test, starts braid's test LNS in it
// with `braid lab lns up` and extra flags, turns on the LAN client's
// SLAAC (as scripts/demo.sh does), and returns the lab and its box, whose
// daemon gets the LNS's default password.
func testLNSLab(t *testing.T, flags ...string) (*lab.Lab, *box) {
	t.Helper()
	nstest.RequireBinary(t, "dnsmasq")
	nstest.RequireBinary(t, "kea-dhcp6")
	l := labtest.New(t)
	if out, err := labCLI(t, append([]string{"lab", "lns", "up", "--name", l.Name}, flags...)...); err != nil {
		t.Fatalf("braid lab lns up: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := labCLI(t, "lab", "lns", "status", "--name", l.Name)
			t.Logf("braid lab lns status:\n%s", out)
		}
	})
	if _, err := l.Run(context.Background(), lab.RoleLAN, "sysctl", "-qw",
		"net.ipv6.conf."+lab.LANDev+".accept_ra=2", "net.ipv6.conf."+lab.LANDev+".autoconf=1"); err != nil {
		t.Fatal(err)
	}
	b := labBoxOf(t, l)
	b.env = append(b.env, pppPasswordEnv+"="+lab.LNSDefaultPassword)
	return l, b
}

// labCLI runs the braid binary with args.
func labCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, braidBin, args...).CombinedOutput()
	return string(out), err
}

// The demo's 6PE step without ../shared: `braid lab lns up` runs braid's
// test LNS where specs/lab-6pe.yaml expects the real one, and the spec,
// unchanged, brings the tunnel up against it (tunnel secret, CHAP login,
// IPV6CP, a /56 from Kea over the PPP link); the LAN client takes an
// address in the prefix from braid's adverts, and `braid lab whoami`
// from that address sees the IPv6 server see it. tshark finds nothing
// wrong in either side's frames. braid restarted gets the same prefix;
// `braid lab lns down` takes the LNS away, braid notices, and the tunnel
// comes back with `braid lab lns up`.
func TestRunTunnelWithTheTestLNS(t *testing.T) {
	l, b := testLNSLab(t)
	bringUp := captureUDP(t, l.NS(lab.RoleISP1), lab.ISPDownDev)
	d := b.startDaemon("-f", "../../specs/lab-6pe.yaml")
	d.bound(lab.BoxWAN1V4)
	_, p, st := d.tunnelUp()
	s, _ := sessionIn(st, tunnelSession)
	for _, w := range []string{"LNS " + lab.LNSAddrV4 + ":1701 (lns)", "login " + sixpeLogin + " (CHAP-MD5)", "<-> fe80::1"} {
		if !strings.Contains(s.Detail, w) {
			t.Errorf("status of the tunnel %q does not say %q", s.Detail, w)
		}
	}
	from, inUse := reachesServer(t, l, d)
	if inUse != p.Prefix {
		t.Errorf("the LAN reached the server from %s, in %s, not in the prefix delegated, %s", from, inUse, p.Prefix)
	}
	// The CLI the demo uses says the same.
	out, err := labCLI(t, "lab", "whoami", "--name", l.Name, "--from", "lan", "--bind", from.String(), "["+lab.ServerV6+"]:7")
	if err != nil || !strings.HasPrefix(out, "["+from.String()+"]:") {
		t.Errorf("braid lab whoami from %s: %v\n%s", from, err, out)
	}
	for _, who := range []string{"ip.src == " + lab.BoxWAN1V4, "ip.src == " + lab.LNSAddrV4} {
		if p := bringUp.problems(who); p != "" {
			t.Errorf("tshark flags frames with %s on isp1:\n%s", who, p)
		}
	}
	out, err = labCLI(t, "lab", "lns", "status", "--name", l.Name)
	for _, w := range []string{`msg="PPP login accepted".*login=` + regexp.QuoteMeta(sixpeLogin) + ` auth=chap`, `msg="IPV6CP up"`, `lns-dhcp6\s+pid \d+\s+running`} {
		if err != nil || !regexp.MustCompile(w).MatchString(out) {
			t.Errorf("braid lab lns status does not match %q: %v\n%s", w, err, out)
		}
	}

	// braid restarted: the LNS hears it go (LCP Terminate-Request, then
	// the CDN and the StopCCN), and Kea gives the same prefix back.
	d.stop(syscall.SIGTERM)
	d = b.startDaemon("-f", "../../specs/lab-6pe.yaml")
	d.tunnelUp()
	if _, p2 := reachesServer(t, l, d); p2 != p.Prefix {
		t.Errorf("after a restart of braid, prefix %s, want %s again", p2, p.Prefix)
	}
	log, _ := os.ReadFile(l.Dir + "/procs/" + lab.LNSProcess + ".log")
	if !regexp.MustCompile(`msg="tunnel closed".*tunnel closed by the LAC`).Match(log) {
		t.Errorf("the LNS did not hear braid close its first tunnel:\n%s", log)
	}

	// The LNS goes: braid notices (LCP echoes), the namespace is gone.
	if out, err := labCLI(t, "lab", "lns", "down", "--name", l.Name); err != nil {
		t.Fatalf("braid lab lns down: %v\n%s", err, out)
	}
	d.untilWithin("the tunnel down after the LNS", 2*time.Minute, func(st reconcile.Status) bool {
		s, _ := sessionIn(st, tunnelSession)
		return s.Restarts > 0
	})
	if out, _ := exec.Command("ip", "netns", "list").Output(); strings.Contains(string(out), l.NS(lab.RoleLNS)) {
		t.Errorf("namespace %s left after lab lns down", l.NS(lab.RoleLNS))
	}
	// And comes back.
	if out, err := labCLI(t, "lab", "lns", "up", "--name", l.Name); err != nil {
		t.Fatalf("braid lab lns up again: %v\n%s", err, out)
	}
	d.tunnelUp()
	reachesServer(t, l, d)

	// braid lab down takes the LNS with the lab: its process, Kea and
	// its namespace.
	d.stop(syscall.SIGTERM)
	st2, err := l.LNSStatus()
	if err != nil || len(st2.Processes) != 2 {
		t.Fatalf("LNS status %+v: %v", st2, err)
	}
	if out, err := labCLI(t, "lab", "down", "--name", l.Name); err != nil {
		t.Fatalf("braid lab down: %v\n%s", err, out)
	}
	if out, _ := exec.Command("ip", "netns", "list").Output(); strings.Contains(string(out), l.NS(lab.RoleLNS)) {
		t.Errorf("namespace %s left after lab down", l.NS(lab.RoleLNS))
	}
	for _, p := range st2.Processes {
		// Gone, or a zombie its new parent has not reaped yet.
		if b, err := os.ReadFile("/proc/" + strconv.Itoa(p.PID) + "/stat"); err == nil && !regexp.MustCompile(`\) [ZX] `).Match(b) {
			t.Errorf("process %s (pid %d) left after lab down: %s", p.Name, p.PID, b)
		}
	}
}

// A wrong PPP password (the LNS started with another) is refused with
// CHAP Failure and said in status; PAP works as CHAP does.
func TestRunTunnelTestLNSLogins(t *testing.T) {
	t.Run("wrong password", func(t *testing.T) {
		_, b := testLNSLab(t, "--password", "not-testpass")
		d := b.startDaemon("-f", "../../specs/lab-6pe.yaml")
		d.untilWithin("the login refused", 2*time.Minute, func(st reconcile.Status) bool {
			s, _ := sessionIn(st, tunnelSession)
			return s.Restarts >= 1 && strings.Contains(s.LastError, "PPP authentication refused (CHAP-MD5)")
		})
	})
	t.Run("wrong secret", func(t *testing.T) {
		_, b := testLNSLab(t, "--secret", "not-6pe")
		d := b.startDaemon("-f", "../../specs/lab-6pe.yaml")
		d.untilWithin("the tunnel refused", 2*time.Minute, func(st reconcile.Status) bool {
			s, _ := sessionIn(st, tunnelSession)
			return s.Restarts >= 1 && strings.Contains(s.LastError, "tunnel authentication failed: wrong secret?")
		})
	})
	t.Run("pap", func(t *testing.T) {
		l, b := testLNSLab(t, "--auth", "pap")
		d := b.startDaemon("-f", "../../specs/lab-6pe.yaml")
		_, _, st := d.tunnelUp()
		if s, _ := sessionIn(st, tunnelSession); !strings.Contains(s.Detail, "(PAP)") {
			t.Errorf("status %q does not say PAP", s.Detail)
		}
		reachesServer(t, l, d)
	})
}
