package main

import (
	"context"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/braid-router/braid/lab"
	"github.com/braid-router/braid/reconcile"
)

// holdServer listens in the lab's Internet core, on the server's IPv4
// address, greets every client with a line and holds its connection
// until the test ends; it returns its address.
func holdServer(t *testing.T, l *lab.Lab) string {
	t.Helper()
	var ln net.Listener
	if err := l.Do(lab.RoleInet, func() (err error) {
		ln, err = net.Listen("tcp", net.JoinHostPort(lab.ServerV4, "7302"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { close(done); ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("hello\n"))
			go func() { <-done; c.Close() }()
		}
	}()
	return ln.Addr().String()
}

// boxMIB reads the box's MPTCP counters (/proc/net/netstat, MPTcpExt):
// the kernel's own, not braid's.
func boxMIB(t *testing.T, l *lab.Lab) map[string]int64 {
	t.Helper()
	out, err := l.Run(context.Background(), lab.RoleBox, "cat", "/proc/net/netstat")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	m := map[string]int64{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "MPTcpExt:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i := 1; i < len(f) && i < len(names); i++ {
			m[names[i]], _ = strconv.ParseInt(f[i], 10, 64)
		}
	}
	if len(m) == 0 {
		t.Fatalf("no MPTcpExt counters in the box's /proc/net/netstat")
	}
	return m
}

// TestStatusFlagsStrippedMPTCP: braid on both ends, in the lab
// (specs/lab-aggregation.yaml on the box, braid's peer). LAN clients
// hold connections to a server in the Internet, each relayed by the
// proxy over one Multipath TCP connection to the peer, whose first
// subflow leaves by isp1 and whose join by isp2. Healthy, the proxy
// session's status says both uplinks' subflows are ok. With isp2
// stripping the MPTCP option from SYNs (`braid lab fault isp2
// strip-mptcp`), it flags isp2, with what it means and what to try, and
// not isp1; the kernel agrees (joins sent, none answered). Cleared, the
// next connections clear the flag. Every wait is on a condition.
func TestStatusFlagsStrippedMPTCP(t *testing.T) {
	l := labWithPeer(t)
	b := labBoxOf(t, l)
	metricsAddr := "127.0.0.1:" + strconv.Itoa(b.freePort())
	d := b.startDaemon("-f", writeSpec(t, labAggregationSpec(t, l)), "--metrics-listen", metricsAddr)
	steeredLAN(t, l, d, "the proxy running and its steering in place")
	whoami := net.JoinHostPort(lab.ServerV4, strconv.Itoa(lab.WhoamiPort))
	e2eWait(t, l, nil, "the LAN's connections going through the peer", func() bool {
		seen, _ := ask(l, lab.RoleLAN, whoami)
		ap, err := netip.ParseAddrPort(seen)
		return err == nil && ap.Addr().String() == lab.PeerV4
	})
	server := holdServer(t, l)

	var held []net.Conn
	t.Cleanup(func() {
		for _, c := range held {
			c.Close()
		}
	})
	// hold opens a LAN connection to the server and reads its greeting,
	// which came through the peer.
	hold := func() {
		t.Helper()
		var c net.Conn
		if err := l.Do(lab.RoleLAN, func() (err error) {
			c, err = net.DialTimeout("tcp", server, 10*time.Second)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		if _, err := c.Read(make([]byte, 16)); err != nil {
			t.Fatalf("a held connection's greeting: %v", err)
		}
	}
	detail := func(st reconcile.Status) string {
		s, _ := sessionIn(st, "session[proxy/aggregation]")
		return s.Detail
	}
	// holding opens connections, one at a time, looking at the status
	// between them, until cond holds of the proxy's detail (bounded: 90
	// s, a hang on a busy machine, not a measurement).
	holding := func(what string, cond func(string) bool) string {
		t.Helper()
		for end := time.Now().Add(90 * time.Second); ; {
			hold()
			for next := time.Now().Add(4 * time.Second); time.Now().Before(next); time.Sleep(200 * time.Millisecond) {
				if st, ok := d.status(); ok && cond(detail(st)) {
					return detail(st)
				}
			}
			if time.Now().After(end) {
				st, _ := d.status()
				t.Fatalf("timed out waiting for %s; the proxy's status: %q\nlogs:\n%s", what, detail(st), d.logs.String())
			}
		}
	}
	bothOK := regexp.MustCompile(`; mptcp: isp1 ok \(\d+ subflows?\), isp2 ok \(\d+ subflows?\)$`)
	holding("both uplinks' subflows ok", bothOK.MatchString)

	if err := l.Inject(context.Background(), lab.Fault{ISP: lab.RoleISP2, Kind: lab.FaultStripMPTCP}); err != nil {
		t.Fatal(err)
	}
	before := boxMIB(t, l)
	got := holding("isp2 flagged", func(s string) bool {
		return strings.Contains(s, "isp2 joins fail\n! isp2: MPTCP subflows to the peer do not establish over isp2: ")
	})
	after := boxMIB(t, l)
	first, rest, _ := strings.Cut(got, "\n")
	if !regexp.MustCompile(`; mptcp: isp1 ok \(\d+ subflows?\), isp2 joins fail$`).MatchString(first) {
		t.Errorf("the status's first line: %q, want isp1 ok and isp2 flagged", first)
	}
	if !strings.Contains(first, "peer up over isp1, isp2") {
		t.Errorf("the peer is not up over both: %q", first)
	}
	if strings.Contains(rest, "! isp1") {
		t.Errorf("isp1 flagged:\n%s", rest)
	}
	for _, want := range []string{"strips MPTCP options from TCP SYNs", "while plain TCP reaches the peer over it", "Try: "} {
		if !strings.Contains(rest, want) {
			t.Errorf("isp2's flag does not say %q:\n%s", want, rest)
		}
	}
	// The kernel's own counters: joins sent meanwhile, none answered.
	if after["MPJoinSynTx"] <= before["MPJoinSynTx"] || after["MPJoinSynAckRx"] != before["MPJoinSynAckRx"] {
		t.Errorf("while isp2 strips MPTCP, the box's kernel counted joins sent %d -> %d, answered %d -> %d; want more sent, none answered",
			before["MPJoinSynTx"], after["MPJoinSynTx"], before["MPJoinSynAckRx"], after["MPJoinSynAckRx"])
	}
	// The metric says the same.
	fams, err := b.scrape(metricsAddr)
	if err != nil {
		t.Fatal(err)
	}
	for uplink, want := range map[string]float64{"isp1": 1, "isp2": 0} {
		if v, ok := metricValue(fams, "braid_uplink_mptcp_subflows_ok", "uplink", uplink); !ok || v != want {
			t.Errorf("isp2 stripping: braid_uplink_mptcp_subflows_ok{uplink=%q} = %v (present %v), want %v", uplink, v, ok, want)
		}
	}
	r := b.braid(nil, "status")
	t.Logf("braid status, isp2 stripping MPTCP:\n%s", r.stdout)
	if i := strings.Index(r.stdout, "session[proxy/aggregation]"); i < 0 || !strings.Contains(r.stdout[i:], "\n              ! isp2: MPTCP subflows") {
		t.Errorf("braid status does not show isp2's flag under the proxy's session:\n%s", r.stdout)
	}

	if err := l.Clear(context.Background(), lab.RoleISP2); err != nil {
		t.Fatal(err)
	}
	holding("isp2's flag cleared", func(s string) bool {
		return bothOK.MatchString(s) && !strings.Contains(s, "\n")
	})

	// isp1, which the first subflows take, stripping MPTCP: the
	// connections fall back to plain TCP, and isp1 is flagged for it.
	if err := l.Inject(context.Background(), lab.Fault{ISP: lab.RoleISP1, Kind: lab.FaultStripMPTCP}); err != nil {
		t.Fatal(err)
	}
	before = boxMIB(t, l)
	got = holding("isp1 flagged", func(s string) bool {
		return strings.Contains(s, "isp1 falls back to plain TCP, isp2 ok (") &&
			strings.Contains(s, "\n! isp1: Multipath TCP fell back to plain TCP on ")
	})
	if after := boxMIB(t, l); after["MPCapableFallbackSYNACK"] <= before["MPCapableFallbackSYNACK"] {
		t.Errorf("while isp1 strips MPTCP, the box's kernel counted no fallback (MPCapableFallbackSYNACK %d -> %d)",
			before["MPCapableFallbackSYNACK"], after["MPCapableFallbackSYNACK"])
	}
	if strings.Contains(got, "! isp2") {
		t.Errorf("isp2 flagged while isp1 strips:\n%s", got)
	}
	r = b.braid(nil, "status")
	t.Logf("braid status, isp1 stripping MPTCP:\n%s", r.stdout)
	if err := l.Clear(context.Background(), lab.RoleISP1); err != nil {
		t.Fatal(err)
	}
	holding("isp1's flag cleared", func(s string) bool {
		return bothOK.MatchString(s) && !strings.Contains(s, "\n")
	})
}
