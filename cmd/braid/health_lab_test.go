package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/braid-router/braid/internal/nstest"
	"github.com/braid-router/braid/lab"
	"github.com/braid-router/braid/reconcile"
)

// Faults on the ISP side of one of the box's links, as `braid lab fault`
// injects them (lab/fault.go, landing from another branch): blackhole
// and loss are nftables rules in the ISP's namespace that drop what
// crosses the link (neighbour discovery excepted: the ISP's end still
// answers, as a modem whose network is dead does), down takes the ISP's
// end down so the box loses its carrier. injectFault and clearFault are
// the one place to switch to l.Inject and l.Clear once it lands.
const (
	faultBlackhole = string(lab.FaultBlackhole)
	faultDown      = string(lab.FaultDown)
	faultLoss      = string(lab.FaultLoss)
)

// injectFault puts a fault on isp's link to the box (`braid lab fault`);
// loss is a percentage for faultLoss.
func injectFault(t *testing.T, l *lab.Lab, isp lab.Role, kind string, loss int) {
	t.Helper()
	if err := l.Inject(context.Background(), lab.Fault{ISP: isp, Kind: lab.FaultKind(kind), Loss: loss}); err != nil {
		t.Fatal(err)
	}
}

// clearFault removes any fault from isp's link.
func clearFault(t *testing.T, l *lab.Lab, isp lab.Role) {
	t.Helper()
	if err := l.Clear(context.Background(), isp); err != nil {
		t.Fatal(err)
	}
}

// healthSpec is specs/lab.yaml with a health tracker on each uplink,
// probing the Internet server by ICMP and TCP, with the given settings
// (e.g. "interval: 100ms, recoverAfter: 2"; "" for the defaults).
func healthSpec(t *testing.T, settings string) string {
	t.Helper()
	b, err := os.ReadFile("../../specs/lab.yaml")
	if err != nil {
		t.Fatal(err)
	}
	h := fmt.Sprintf(`    health: {probes: [{icmp: %s}, {tcp: "%s"}]`, lab.ServerV4, netip.AddrPortFrom(netip.MustParseAddr(lab.ServerV4), lab.WhoamiPort))
	if settings != "" {
		h += ", " + settings
	}
	h += "}\n"
	s := string(b)
	for _, p := range []string{"    priority: 10\n", "    priority: 20\n"} {
		if !strings.Contains(s, p) {
			t.Fatalf("specs/lab.yaml has no %q", p)
		}
		s = strings.Replace(s, p, p+h, 1)
	}
	return writeSpec(t, s)
}

// mainDefaults lists the box's default routes in the main table, as
// "DEV v4" and "DEV v6", sorted.
func mainDefaults(t *testing.T, ns string) []string {
	t.Helper()
	var out []string
	for _, fam := range []string{"-4", "-6"} {
		b, err := exec.Command("ip", "-n", ns, "-j", fam, "route", "show", "table", "main", "default").Output()
		if err != nil {
			t.Fatalf("ip route show: %v", err)
		}
		var routes []struct {
			Dev string `json:"dev"`
		}
		if err := json.Unmarshal(b, &routes); err != nil {
			t.Fatalf("decode %s: %v", b, err)
		}
		for _, r := range routes {
			out = append(out, r.Dev+" v"+fam[1:])
		}
	}
	slices.Sort(out)
	return out
}

// hasDefault reports whether dev has a default route in the main table.
func hasDefault(t *testing.T, ns, dev string) bool {
	return slices.ContainsFunc(mainDefaults(t, ns), func(s string) bool { return strings.HasPrefix(s, dev+" ") })
}

// healthOf returns an uplink's verdict in the daemon's facts, and
// whether there is one.
func healthOf(st reconcile.Status, uplink string) (healthy, known bool) {
	for _, e := range st.Facts.Entries {
		if h := e.Fact.Health; h != nil && h.Uplink == uplink {
			return h.Healthy, true
		}
	}
	return false, false
}

// stream is a TCP transfer from the LAN client to a server in the
// Internet core, which counts what it receives.
type stream struct {
	received atomic.Int64
	mu       sync.Mutex
	err      error
	stop     func()
}

// startStream opens a TCP connection from the LAN client to addr (a
// listener the test starts in the core) and writes to it until stopped.
func startStream(t *testing.T, l *lab.Lab, addr string) *stream {
	t.Helper()
	s := &stream{}
	var ln net.Listener
	if err := l.Do(lab.RoleInet, func() (err error) {
		ln, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var c net.Conn
	if err := l.Do(lab.RoleLAN, func() (err error) {
		c, err = net.DialTimeout("tcp", addr, 10*time.Second)
		return err
	}); err != nil {
		ln.Close()
		t.Fatal(err)
	}
	srv, err := ln.Accept()
	ln.Close()
	if err != nil {
		t.Fatal(err)
	}
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := srv.Read(buf)
			s.received.Add(int64(n))
			if err != nil {
				return
			}
		}
	})
	wg.Go(func() {
		buf := make([]byte, 16<<10)
		for {
			select {
			case <-quit:
				return
			default:
			}
			c.SetWriteDeadline(time.Now().Add(time.Second))
			if _, err := c.Write(buf); err != nil && !isTimeout(err) {
				select {
				case <-quit: // stopped: the close ended the write
				default:
					s.mu.Lock()
					s.err = err
					s.mu.Unlock()
				}
				return
			}
		}
	})
	var once sync.Once
	s.stop = func() {
		once.Do(func() {
			close(quit)
			c.Close()
			srv.Close()
			wg.Wait()
		})
	}
	t.Cleanup(s.stop)
	return s
}

// failed returns the error that ended the transfer, if one did.
func (s *stream) failed() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// progresses waits until the transfer has received n more bytes.
func (s *stream) progresses(n int64) bool {
	from := s.received.Load()
	return waitFor(30*time.Second, func() bool { return s.received.Load()-from >= n || s.failed() != nil }) && s.failed() == nil
}

// leakCounters counts, in each ISP's namespace, the health probes (ICMP
// echo requests and TCP connections to the Internet server) arriving
// from the box with the other uplink's address: a probe that left by the
// wrong uplink. (Other traffic from an uplink's address may leave by
// another uplink while its link has no carrier, as ignore_routes_with_linkdown
// makes the kernel skip the uplink's own table: the box's sockets that are
// not bound to the link, such as an MPTCP connection's first subflow. The
// probes are bound to it.)
func leakCounters(t *testing.T, l *lab.Lab) func() map[lab.Role]int {
	t.Helper()
	// Each ISP's own uplink's probes are counted too: the counters must
	// see probes at all for their silence to mean something.
	own := map[lab.Role]string{lab.RoleISP1: lab.BoxWAN1V4, lab.RoleISP2: lab.BoxWAN2V4}
	other := map[lab.Role]string{lab.RoleISP1: lab.BoxWAN2V4, lab.RoleISP2: lab.BoxWAN1V4}
	for isp := range other {
		var rules strings.Builder
		for _, c := range []struct{ name, addr string }{{"own", own[isp]}, {"leak", other[isp]}} {
			fmt.Fprintf(&rules, "\t\tiifname %q ip saddr %s ip daddr %s icmp type echo-request counter comment %q\n", lab.ISPDownDev, c.addr, lab.ServerV4, c.name)
			fmt.Fprintf(&rules, "\t\tiifname %q ip saddr %s ip daddr %s tcp dport %d counter comment %q\n", lab.ISPDownDev, c.addr, lab.ServerV4, lab.WhoamiPort, c.name)
		}
		cmd := exec.Command("ip", "netns", "exec", l.NS(isp), "nft", "-f", "-")
		cmd.Stdin = strings.NewReader("table inet braidtest_leak {\n\tchain in {\n\t\ttype filter hook prerouting priority raw - 1; policy accept;\n" + rules.String() + "\t}\n}\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("probe counters in %s: %v\n%s", isp, err, out)
		}
	}
	re := regexp.MustCompile(`counter packets (\d+) bytes \d+ comment "(own|leak)"`)
	return func() map[lab.Role]int {
		t.Helper()
		got := map[lab.Role]int{}
		for isp := range other {
			out := nstest.In(t, l.NS(isp), "nft", "list", "table", "inet", "braidtest_leak")
			seen := 0
			for _, m := range re.FindAllStringSubmatch(out, -1) {
				n, _ := strconv.Atoi(m[1])
				if m[2] == "leak" {
					got[isp] += n
				} else {
					seen += n
				}
			}
			if seen == 0 {
				t.Errorf("%s counted none of its own uplink's probes: the counters see nothing\n%s", isp, out)
			}
		}
		return got
	}
}

// TestHealthInTheLab: braid run with a tracker on each uplink of the lab.
// Blackhole, down and 100% loss on each uplink take its default routes out
// of the main table after failAfter rounds (waited for with a generous
// deadline: the tight bound is the benchmark's) and bring them back after
// recoverAfter rounds; a TCP transfer through the other uplink goes on
// undisturbed, and an MPTCP transfer over both survives every fault. With
// both uplinks blackholed, both default routes stay. At 30% loss, status
// shows the loss and the uplink flaps at most a few times in half a
// minute. No probe ever leaves by the other uplink.
func TestHealthInTheLab(t *testing.T) {
	b := newLabBox(t)
	l := b.l
	box, peer := l.NS(lab.RoleBox), l.NS(lab.RolePeer)
	leaks := leakCounters(t, l)
	nstest.Run(t, "ip", "-n", peer, "mptcp", "limits", "set", "subflows", "8", "add_addr_accepted", "8")
	metricsAddr := "127.0.0.1:" + strconv.Itoa(b.freePort())
	d := b.startDaemon("-f", healthSpec(t, ""), "--metrics-listen", metricsAddr)
	both := []string{"wan1 v4", "wan1 v6", "wan2 v4", "wan2 v6"}
	d.until("both uplinks healthy and routed", func(st reconcile.Status) bool {
		h1, k1 := healthOf(st, "isp1")
		h2, k2 := healthOf(st, "isp2")
		return converged(st) && h1 && k1 && h2 && k2 && slices.Equal(mainDefaults(t, box), both)
	})

	// An MPTCP transfer from the box to the peer, over both uplinks, for
	// the whole test.
	mp := listenMPTCP(t, peer, netip.AddrPortFrom(netip.MustParseAddr(lab.PeerV4), 5003).String())
	conn := dialMPTCP(t, box, netip.AddrPortFrom(netip.MustParseAddr(lab.PeerV4), 5003).String())
	pump(t, conn)
	if !waitFor(30*time.Second, func() bool { sf, _ := subflows(conn); return len(sf) == 2 }) {
		t.Fatalf("no subflow per uplink before the faults\n%s", ssSubflows(box))
	}
	transitions := func(uplink, to string) float64 {
		fams, err := b.scrape(metricsAddr)
		if err != nil {
			t.Fatalf("scrape: %v", err)
		}
		v, _ := metricValue(fams, "braid_uplink_health_transitions_total", "uplink", uplink, "to", to)
		return v
	}

	uplinks := map[lab.Role]struct {
		name, dev string
		// other is a server the LAN reaches through the other uplink.
		other string
	}{
		lab.RoleISP1: {"isp1", lab.BoxWAN1Dev, netip.AddrPortFrom(netip.MustParseAddr(lab.SteeredServerV4), 9101).String()},
		lab.RoleISP2: {"isp2", lab.BoxWAN2Dev, netip.AddrPortFrom(netip.MustParseAddr(lab.ServerV4), 9102).String()},
	}
	for _, isp := range []lab.Role{lab.RoleISP1, lab.RoleISP2} {
		u := uplinks[isp]
		for _, f := range []struct{ kind, name string }{{faultBlackhole, "blackhole"}, {faultDown, "down"}, {faultLoss, "100% loss"}} {
			t.Run(u.name+" "+f.name, func(t *testing.T) {
				tcp := startStream(t, l, u.other)
				if !tcp.progresses(256 << 10) {
					t.Fatalf("the transfer through the other uplink does not flow before the fault: %v", tcp.failed())
				}
				down0, up0 := transitions(u.name, "unhealthy"), transitions(u.name, "healthy")
				mp0 := mp.received.Load()
				injectFault(t, l, isp, f.kind, 100)
				d.until(u.name+" out of the main table", func(st reconcile.Status) bool {
					healthy, known := healthOf(st, u.name)
					return known && !healthy && converged(st) && !hasDefault(t, box, u.dev)
				})
				st, _ := d.status()
				if s, _ := sessionIn(st, "session[health/"+u.name+"]"); !strings.HasPrefix(s.Detail, "unhealthy") {
					t.Errorf("status of the tracker: %q", s.Detail)
				}
				if !tcp.progresses(256 << 10) {
					t.Errorf("the TCP transfer through the other uplink stalled during the fault: %v", tcp.failed())
				}
				if !waitFor(30*time.Second, func() bool { return mp.received.Load()-mp0 > 1<<20 }) {
					t.Errorf("the MPTCP transfer got only %d bytes through during the fault\n%s", mp.received.Load()-mp0, ssSubflows(box))
				}
				clearFault(t, l, isp)
				d.until(u.name+" back in the main table", func(st reconcile.Status) bool {
					healthy, known := healthOf(st, u.name)
					return known && healthy && converged(st) && slices.Equal(mainDefaults(t, box), both)
				})
				if !tcp.progresses(256 << 10) {
					t.Errorf("the TCP transfer through the other uplink stalled after the fault: %v", tcp.failed())
				}
				tcp.stop()
				if err := tcp.failed(); err != nil {
					t.Errorf("the TCP transfer through the other uplink failed: %v", err)
				}
				if transitions(u.name, "unhealthy") <= down0 || transitions(u.name, "healthy") <= up0 {
					t.Errorf("braid_uplink_health_transitions_total did not count the fault's transitions")
				}
			})
		}
	}

	t.Run("a LAN UDP flow moves with its NAT", func(t *testing.T) {
		// One flow (one source port) that keeps sending: its conntrack
		// entry holds its NAT to isp1's address, and the kernel drops
		// the entry of a masqueraded flow whose packets leave by another
		// interface (nf_nat_oif_changed), so once isp1's default route is
		// withdrawn, the flow's next packet is NATed to isp2's.
		server := netip.AddrPortFrom(netip.MustParseAddr(lab.ServerV4), lab.WhoamiPort).String()
		bind := netip.AddrPortFrom(netip.MustParseAddr(lab.LANClientV4), 40007).String()
		seen := func() string {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			got, err := l.Whoami(ctx, lab.RoleLAN, "udp", server, bind)
			if err != nil {
				return "no answer"
			}
			return got.Addr().String()
		}
		var got string
		if !waitFor(30*time.Second, func() bool { got = seen(); return got == lab.BoxWAN1V4 }) {
			t.Fatalf("before the fault the server sees the flow from %s, want isp1's %s", got, lab.BoxWAN1V4)
		}
		injectFault(t, l, lab.RoleISP1, faultBlackhole, 0)
		if !waitFor(30*time.Second, func() bool { got = seen(); return got == lab.BoxWAN2V4 }) {
			t.Errorf("the flow did not move to isp2: the server sees %s", got)
		}
		clearFault(t, l, lab.RoleISP1)
		d.until("isp1 back", func(st reconcile.Status) bool {
			healthy, _ := healthOf(st, "isp1")
			return healthy && converged(st) && slices.Equal(mainDefaults(t, box), both)
		})
	})

	t.Run("both blackholed: both default routes stay", func(t *testing.T) {
		injectFault(t, l, lab.RoleISP1, faultBlackhole, 0)
		injectFault(t, l, lab.RoleISP2, faultBlackhole, 0)
		st := d.until("both uplinks unhealthy", func(st reconcile.Status) bool {
			h1, k1 := healthOf(st, "isp1")
			h2, k2 := healthOf(st, "isp2")
			return k1 && !h1 && k2 && !h2
		})
		// A pass that surely compiles both verdicts (one the reload
		// triggers, after both were published) keeps every route.
		st = d.reload(st)
		if h1, _ := healthOf(st, "isp1"); h1 {
			t.Fatalf("isp1 recovered while blackholed")
		}
		if got := mainDefaults(t, box); !slices.Equal(got, both) {
			t.Errorf("main default routes with both uplinks unhealthy: %v, want %v", got, both)
		}
		clearFault(t, l, lab.RoleISP1)
		clearFault(t, l, lab.RoleISP2)
		d.until("both uplinks healthy again", func(st reconcile.Status) bool {
			h1, _ := healthOf(st, "isp1")
			h2, _ := healthOf(st, "isp2")
			return h1 && h2 && converged(st)
		})
	})

	t.Run("30% loss: status shows it, few flaps", func(t *testing.T) {
		injectFault(t, l, lab.RoleISP2, faultLoss, 30)
		defer clearFault(t, l, lab.RoleISP2)
		lossRE := regexp.MustCompile(`loss (\d+)%`)
		d.until("the loss in status", func(st reconcile.Status) bool {
			s, _ := sessionIn(st, "session[health/isp2]")
			m := lossRE.FindStringSubmatch(s.Detail)
			n := 0
			if m != nil {
				n, _ = strconv.Atoi(m[1])
			}
			return n >= 5
		})
		before := transitions("isp2", "unhealthy") + transitions("isp2", "healthy")
		const window = 30 * time.Second
		time.Sleep(window) // an observation window, not synchronisation: flaps are counted over it
		flaps := transitions("isp2", "unhealthy") + transitions("isp2", "healthy") - before
		// Each round fails only when both probes (each about 50% lost
		// both ways) fail: about a quarter of the rounds. On an idle
		// machine that is about 3 transitions a minute; on a busy one,
		// late answers fail more rounds, and that is the tracker's
		// right. What holds however busy the machine is hysteresis: a
		// way down and back takes failAfter intervals of silence and
		// recoverAfter good rounds (spanning 4 intervals), at least
		// 7 x 500 ms at the defaults, so the window has room for at
		// most 2 x 8 + 2 = 18 transitions. A tracker without hysteresis would change with
		// about 2 x 0.26 x 0.74 of its 60 rounds: 23.
		const most = 2*int(window/(7*500*time.Millisecond)) + 2
		if flaps > float64(most) {
			t.Errorf("isp2 changed verdict %v times in %s at 30%% loss, more than hysteresis allows (%d)", flaps, window, most)
		}
		t.Logf("30%% loss: %v transitions in %s", flaps, window)
	})

	for isp, n := range leaks() {
		if n != 0 {
			t.Errorf("%s received %d probes from the other uplink's address: a probe left by the wrong uplink", isp, n)
		}
	}
}

// TestHealthCarrierFlaps: 50 real carrier losses on isp1 (its ISP's end
// taken down and up), each taking isp1 out of the main table at once and
// back after its rounds; afterwards the daemon's goroutines, file
// descriptors, the box's routes and MPTCP endpoints are back to their
// baseline, and both uplinks are healthy.
func TestHealthCarrierFlaps(t *testing.T) {
	b := newLabBox(t)
	l := b.l
	box, isp1 := l.NS(lab.RoleBox), l.NS(lab.RoleISP1)
	metricsAddr := "127.0.0.1:" + strconv.Itoa(b.freePort())
	d := b.startDaemon("-f", healthSpec(t, "interval: 100ms, recoverAfter: 2"), "--metrics-listen", metricsAddr)
	both := []string{"wan1 v4", "wan1 v6", "wan2 v4", "wan2 v6"}
	d.until("both uplinks healthy and routed", func(st reconcile.Status) bool {
		h1, k1 := healthOf(st, "isp1")
		h2, k2 := healthOf(st, "isp2")
		return converged(st) && h1 && k1 && h2 && k2 && slices.Equal(mainDefaults(t, box), both)
	})
	pid := d.cmd.Process.Pid
	goroutines := func() float64 {
		fams, err := b.scrape(metricsAddr)
		if err != nil {
			t.Fatalf("scrape: %v", err)
		}
		return mustValue(t, fams, "go_goroutines")
	}
	fds := func() int {
		// braid --netns re-executes itself in place: same pid.
		entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		if err != nil {
			t.Fatal(err)
		}
		return len(entries)
	}
	routes := func() string {
		return nstest.Run(t, "ip", "-n", box, "route", "show", "table", "all", "proto", "98") +
			nstest.Run(t, "ip", "-n", box, "-6", "route", "show", "table", "all", "proto", "98")
	}
	endpoints := func() string { return nstest.Run(t, "ip", "-n", box, "mptcp", "endpoint", "show") }
	g0, f0, r0, e0 := goroutines(), fds(), routes(), endpoints()

	for i := range 50 {
		nstest.Run(t, "ip", "-n", isp1, "link", "set", "dev", lab.ISPDownDev, "down")
		d.until(fmt.Sprintf("flap %d: isp1 out", i), func(st reconcile.Status) bool {
			healthy, _ := healthOf(st, "isp1")
			return !healthy && !hasDefault(t, box, lab.BoxWAN1Dev)
		})
		nstest.Run(t, "ip", "-n", isp1, "link", "set", "dev", lab.ISPDownDev, "up")
		d.until(fmt.Sprintf("flap %d: isp1 back", i), func(st reconcile.Status) bool {
			healthy, _ := healthOf(st, "isp1")
			return healthy && converged(st) && slices.Equal(mainDefaults(t, box), both)
		})
	}
	fams, err := b.scrape(metricsAddr)
	if err != nil {
		t.Fatal(err)
	}
	if n := mustValue(t, fams, "braid_uplink_health_transitions_total", "uplink", "isp1", "to", "unhealthy"); n < 50 {
		t.Errorf("%v transitions to unhealthy counted for 50 carrier losses", n)
	}
	// Back to the baseline: probes and their sockets end with their round,
	// so wait for the last ones.
	var g, f int
	if !waitFor(30*time.Second, func() bool {
		g, f = int(goroutines()), fds()
		return float64(g) <= g0 && f <= f0
	}) {
		t.Errorf("after 50 flaps: %d goroutines (baseline %v), %d file descriptors (baseline %d)", g, g0, f, f0)
	}
	if r := routes(); r != r0 {
		t.Errorf("routes after 50 flaps:\n%s", diffLines(r0, r))
	}
	if e := endpoints(); e != e0 {
		t.Errorf("MPTCP endpoints after 50 flaps:\n%s", diffLines(e0, e))
	}
	st, _ := d.status()
	for _, u := range []string{"isp1", "isp2"} {
		if healthy, known := healthOf(st, u); !healthy || !known {
			t.Errorf("%s: healthy %v (known %v) after the flaps", u, healthy, known)
		}
	}
}

// TestCarrierWithoutTracker: an uplink without health is judged by its
// carrier alone, by the kernel (ignore_routes_with_linkdown), even with
// no braid process running: after a CLI apply, the LAN's traffic leaves
// by isp2 as soon as isp1's carrier goes, and by isp1 again once it is
// back.
func TestCarrierWithoutTracker(t *testing.T) {
	b := newLabBox(t)
	l := b.l
	b.braidOK("apply", "-f", "../../specs/lab.yaml")
	server := netip.AddrPortFrom(netip.MustParseAddr(lab.ServerV4), lab.WhoamiPort).String()
	server6 := netip.AddrPortFrom(netip.MustParseAddr(lab.ServerV6), lab.WhoamiPort).String()
	box6 := func() string { return b.whoami(lab.RoleBox, "tcp", server6) }
	if got := b.whoami(lab.RoleLAN, "tcp", server); got != lab.BoxWAN1V4 {
		t.Fatalf("before: the LAN reaches the server from %s, want isp1's %s", got, lab.BoxWAN1V4)
	}
	injectFault(t, l, lab.RoleISP1, faultDown, 0)
	for _, c := range []struct {
		what string
		ask  func() string
		want string
	}{
		{"the LAN over IPv4", func() string { return b.whoami(lab.RoleLAN, "tcp", server) }, lab.BoxWAN2V4},
		{"the box over IPv6", box6, lab.BoxWAN2V6},
	} {
		var got string
		if !waitFor(30*time.Second, func() bool { got = c.ask(); return got == c.want }) {
			t.Errorf("isp1 without carrier: %s reaches the server from %s, want isp2's %s", c.what, got, c.want)
		}
	}
	// The routes stay, flagged linkdown: nothing to converge.
	if !hasDefault(t, l.NS(lab.RoleBox), lab.BoxWAN1Dev) {
		t.Error("isp1's default route left the main table")
	}
	b.must(0, "plan", "-f", "../../specs/lab.yaml")
	clearFault(t, l, lab.RoleISP1)
	var got string
	if !waitFor(30*time.Second, func() bool { got = b.whoami(lab.RoleLAN, "tcp", server); return got == lab.BoxWAN1V4 }) {
		t.Errorf("carrier back: the LAN reaches the server from %s, want isp1's %s", got, lab.BoxWAN1V4)
	}
}

// TestHealthLANIPv6PolicyFail: with isp2 on IPv4 only, the LAN's IPv6
// prefix leaves by isp1 alone; once isp1 is unhealthy, a LAN host's IPv6
// connection is refused at once with ICMPv6 destination unreachable code
// 5 (the kernel reports it as EACCES), so it falls back to IPv4, which
// leaves by isp2; back when isp1 recovers.
func TestHealthLANIPv6PolicyFail(t *testing.T) {
	b := newLabBox(t)
	l := b.l
	spec := strings.Replace(readFile(t, healthSpec(t, "")), "    ipv6:\n      static: {address: 2001:db8:102::2/64, gateway: 2001:db8:102::1}\n", "", 1)
	spec = strings.Replace(spec, "[198.51.100.128/25, 2001:db8:ffff:1::/64]", "[198.51.100.128/25]", 1)
	if strings.Contains(spec, "2001:db8:102::2") || strings.Contains(spec, "2001:db8:ffff:1::/64") {
		t.Fatal("the spec still gives isp2 IPv6")
	}
	d := b.startDaemon("-f", writeSpec(t, spec))
	d.until("both uplinks healthy", func(st reconcile.Status) bool {
		h1, _ := healthOf(st, "isp1")
		h2, _ := healthOf(st, "isp2")
		return h1 && h2 && converged(st)
	})
	server6 := netip.AddrPortFrom(netip.MustParseAddr(lab.ServerV6), lab.WhoamiPort).String()
	server4 := netip.AddrPortFrom(netip.MustParseAddr(lab.ServerV4), lab.WhoamiPort).String()
	dial6 := func() error {
		return l.Do(lab.RoleLAN, func() error {
			c, err := net.DialTimeout("tcp", server6, 5*time.Second)
			if err == nil {
				c.Close()
			}
			return err
		})
	}
	if err := dial6(); err != nil {
		t.Fatalf("before the fault the LAN reaches the server over IPv6: %v", err)
	}
	injectFault(t, l, lab.RoleISP1, faultBlackhole, 0)
	d.until("isp1 unhealthy and withdrawn", func(st reconcile.Status) bool {
		healthy, known := healthOf(st, "isp1")
		return known && !healthy && converged(st)
	})
	err := dial6()
	if !errors.Is(err, syscall.EACCES) {
		t.Errorf("an IPv6 connection from the LAN with isp1 unhealthy: %v, want EACCES (ICMPv6 code 5)", err)
	}
	if got := b.whoami(lab.RoleLAN, "tcp", server4); got != lab.BoxWAN2V4 {
		t.Errorf("IPv4 from the LAN leaves from %s, want isp2's %s", got, lab.BoxWAN2V4)
	}
	clearFault(t, l, lab.RoleISP1)
	d.until("isp1 healthy", func(st reconcile.Status) bool {
		healthy, _ := healthOf(st, "isp1")
		return healthy && converged(st)
	})
	if err := dial6(); err != nil {
		t.Errorf("after isp1 recovered the LAN reaches the server over IPv6: %v", err)
	}
}
