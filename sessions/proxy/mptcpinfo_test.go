package proxy

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/braid-router/braid/facts"
	"github.com/braid-router/braid/internal/nstest"
	"github.com/braid-router/braid/session"
	"github.com/braid-router/braid/sessions/proxy/peerhealth"
	"github.com/braid-router/braid/sessions/proxy/subflows"
)

// twoPaths is a box namespace with two links to a peer namespace, as
// two uplinks: the box's 10.1.0.2 (a) and 10.2.0.2 (b, an MPTCP
// endpoint, routed by its own table), the peer's 10.1.0.1.
type twoPaths struct {
	box, peer string
}

var (
	pathA = netip.MustParseAddr("10.1.0.2")
	pathB = netip.MustParseAddr("10.2.0.2")
)

func newTwoPaths(t *testing.T) twoPaths {
	n := twoPaths{box: nstest.New(t), peer: nstest.New(t)}
	for i, dev := range []string{"a", "b"} {
		nstest.Run(t, "ip", "link", "add", "box-"+dev, "netns", n.box, "type", "veth", "peer", "peer-"+dev, "netns", n.peer)
		net := strconv.Itoa(i + 1)
		nstest.Run(t, "ip", "-n", n.box, "addr", "add", "10."+net+".0.2/24", "dev", "box-"+dev)
		nstest.Run(t, "ip", "-n", n.peer, "addr", "add", "10."+net+".0.1/24", "dev", "peer-"+dev)
		nstest.Run(t, "ip", "-n", n.box, "link", "set", "box-"+dev, "up")
		nstest.Run(t, "ip", "-n", n.peer, "link", "set", "peer-"+dev, "up")
	}
	nstest.Run(t, "ip", "-n", n.box, "route", "add", "default", "via", "10.2.0.1", "dev", "box-b", "table", "102")
	nstest.Run(t, "ip", "-n", n.box, "rule", "add", "from", pathB.String(), "table", "102")
	nstest.Run(t, "ip", "-n", n.box, "mptcp", "endpoint", "add", pathB.String(), "dev", "box-b", "subflow")
	for _, ns := range []string{n.box, n.peer} {
		nstest.In(t, ns, "sysctl", "-qw", "net.mptcp.enabled=1")
		nstest.Run(t, "ip", "-n", ns, "mptcp", "limits", "set", "subflows", "2", "add_addr_accepted", "2")
	}
	return n
}

// serve listens in the peer namespace on 10.1.0.1:port, with Multipath
// TCP or plain, and greets each client with a byte (so that the
// client's connection is fully established), then holds it until the
// test ends.
func (n twoPaths) serve(t *testing.T, port int, mptcp bool) {
	var ln net.Listener
	nstest.Do(t, n.peer, func() (err error) {
		lc := net.ListenConfig{}
		lc.SetMultipathTCP(mptcp)
		ln, err = lc.Listen(context.Background(), "tcp", "10.1.0.1:"+strconv.Itoa(port))
		return err
	})
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); close(done) })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte{1})
			go func() { <-done; c.Close() }()
		}
	}()
}

// dial connects from the box to the peer's port with Multipath TCP and
// reads its greeting.
func (n twoPaths) dial(t *testing.T, port int) *net.TCPConn {
	var c net.Conn
	nstest.Do(t, n.box, func() (err error) {
		d := net.Dialer{Timeout: 10 * time.Second}
		d.SetMultipathTCP(true)
		c, err = d.Dial("tcp", "10.1.0.1:"+strconv.Itoa(port))
		return err
	})
	t.Cleanup(func() { c.Close() })
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != nil {
		t.Fatalf("the peer's greeting: %v", err)
	}
	return c.(*net.TCPConn)
}

// mib reads a counter of the box's MPTcpExt (/proc/net/netstat).
func (n twoPaths) mib(t *testing.T, name string) int64 {
	var v int64 = -1
	nstest.Do(t, n.box, func() error {
		b, err := os.ReadFile("/proc/thread-self/net/netstat")
		if err != nil {
			return err
		}
		var names []string
		for _, line := range bytes.Split(b, []byte("\n")) {
			f := strings.Fields(string(line))
			if len(f) == 0 || f[0] != "MPTcpExt:" {
				continue
			}
			if names == nil {
				names = f
				continue
			}
			if i := slices.Index(names, name); i > 0 && i < len(f) {
				v, err = strconv.ParseInt(f[i], 10, 64)
				return err
			}
		}
		return fmt.Errorf("no MPTcpExt %s in /proc/net/netstat", name)
	})
	return v
}

// judged polls what the kernel says of c until Judge says want of
// uplink b (a bound on a hang of a minute, no timing asserted).
func judged(t *testing.T, c *net.TCPConn, want subflows.Result, also func() bool) subflows.Conn {
	t.Helper()
	ups := []subflows.Uplink{{Name: "a", Endpoints: []netip.Addr{pathA}, Reached: true}, {Name: "b", Endpoints: []netip.Addr{pathB}, Reached: true}}
	var conn subflows.Conn
	var got []subflows.Outcome
	for end := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		var ok bool
		var err error
		conn, ok, err = readMPTCP(c)
		if err != nil || !ok {
			t.Fatalf("readMPTCP: %v (MPTCP %v)", err, ok)
		}
		got = subflows.Judge(conn, ups)
		if slices.Contains(got, subflows.Outcome{Uplink: "b", Result: want}) && (also == nil || also()) {
			return conn
		}
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for b %v: %+v judged %v", want, conn, got)
		}
	}
}

// TestReadMPTCP reads, with MPTCP_FULL_INFO, the subflows of real
// Multipath TCP connections between two namespaces over two paths (root):
// both established; the join's SYN dropped on path b (it stays in
// SYN-SENT, retransmitted); the join's MPTCP option stripped on path b
// (nftables' reset, as a middlebox does: the peer answers plain TCP, the
// box resets the join, which is gone); a peer without MPTCP (the
// connection fell back).
func TestReadMPTCP(t *testing.T) {
	n := newTwoPaths(t)
	const port = 7001
	n.serve(t, port, true)

	t.Run("both paths", func(t *testing.T) {
		c := n.dial(t, port)
		conn := judged(t, c, subflows.JoinOK, nil)
		if conn.Fallback || conn.Local != pathA || conn.Remote != netip.MustParseAddr("10.1.0.1") {
			t.Errorf("the connection: %+v", conn)
		}
		var locals []netip.Addr
		for _, sf := range conn.Subflows {
			if sf.State == subflows.StateEstablished {
				locals = append(locals, sf.Local)
			}
		}
		if !slices.Contains(locals, pathA) || !slices.Contains(locals, pathB) {
			t.Errorf("established subflows from %v, want %v and %v", locals, pathA, pathB)
		}
	})

	fault := func(t *testing.T, verdict string) {
		nstest.NftLoad(t, n.peer, "table inet strip {\n chain in {\n  type filter hook prerouting priority -300; policy accept;\n"+
			"  iifname \"peer-b\" tcp flags & syn == syn tcp option mptcp exists "+verdict+"\n }\n}\n")
		t.Cleanup(func() { nstest.In(t, n.peer, "nft", "delete", "table", "inet", "strip") })
	}
	t.Run("join dropped", func(t *testing.T) {
		fault(t, "drop")
		c := n.dial(t, port)
		t.Logf("%+v", judged(t, c, subflows.JoinUnanswered, nil))
	})
	t.Run("join stripped", func(t *testing.T) {
		fault(t, "reset tcp option mptcp")
		sent := n.mib(t, "MPJoinSynTx")
		c := n.dial(t, port)
		// Missing once the join was sent: refused, not yet to come.
		conn := judged(t, c, subflows.JoinMissing, func() bool { return n.mib(t, "MPJoinSynTx") > sent })
		t.Logf("%+v; MPJoinSynTx %d, MPJoinSynAckRx %d", conn, n.mib(t, "MPJoinSynTx"), n.mib(t, "MPJoinSynAckRx"))
	})
	t.Run("peer without MPTCP", func(t *testing.T) {
		n.serve(t, port+1, false)
		c := n.dial(t, port+1)
		conn, ok, err := readMPTCP(c)
		if err != nil || !ok || !conn.Fallback || conn.Local != pathA {
			t.Errorf("readMPTCP = %+v, MPTCP %v, %v; want a fallback from %v", conn, ok, err, pathA)
		}
	})
}

// TestSubflowsStatus: the peer's health, as the proxy runs it, looks at
// real connections over two paths (root) and says per uplink in the
// session's status whether their subflows establish: b is flagged once
// 3 connections' joins over it were stripped (nftables in the peer's
// namespace), a is not; an uplink plain TCP stops reaching the peer over
// loses its flag; the fault cleared, the next connection clears it.
func TestSubflowsStatus(t *testing.T) {
	n := newTwoPaths(t)
	const port = 7001
	n.serve(t, port, true)
	hub, err := facts.Open(facts.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hub.Close() })
	var mu sync.Mutex
	var detail string
	env := session.NewEnv(Kind+"/"+Name, nil, hub, func(_ session.State, d string) {
		mu.Lock()
		detail = d
		mu.Unlock()
	})
	status := func() string {
		mu.Lock()
		defer mu.Unlock()
		return detail
	}
	h := newPeerHealth(env, time.Hour, time.Second, 100*time.Millisecond, peerhealth.Params{})
	cfg := Config{Port: Port, Peer: "10.1.0.1:" + strconv.Itoa(port), Cipher: testCipher, Uplinks: []Uplink{
		{Name: "a", Mark: 7101, Endpoints: []netip.Addr{pathA}},
		{Name: "b", Mark: 7102, Endpoints: []netip.Addr{pathB}},
	}}
	if err := h.configure(cfg, nil, "secret", "base"); err != nil {
		t.Fatal(err)
	}
	// Plain TCP reaches the peer over both (what the probes find).
	probed := func(b string) {
		h.mu.Lock()
		h.m.Probed("a", "")
		h.m.Probed("b", b)
		h.applyLocked(time.Now())
		h.mu.Unlock()
	}
	probed("")
	wait := func(what string, cond func(string) bool) {
		t.Helper()
		for end := time.Now().Add(time.Minute); !cond(status()); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(end) {
				t.Fatalf("timed out waiting for %s; status %q", what, status())
			}
		}
	}
	if s := status(); strings.Contains(s, "mptcp:") {
		t.Fatalf("a status about subflows before any connection: %q", s)
	}
	var conns []*net.TCPConn
	connect := func() {
		c := n.dial(t, port)
		conns = append(conns, c)
		h.observe(c)
	}
	connect()
	wait("both uplinks ok", func(s string) bool { return strings.Contains(s, "; mptcp: a ok (1 subflow), b ok (1 subflow)") })

	nstest.NftLoad(t, n.peer, "table inet strip {\n chain in {\n  type filter hook prerouting priority -300; policy accept;\n"+
		"  iifname \"peer-b\" tcp flags & syn == syn reset tcp option mptcp\n }\n}\n")
	for range 3 {
		connect()
	}
	wait("b flagged", func(s string) bool {
		return strings.Contains(s, "; mptcp: a ok (4 subflows), b joins fail\n! b: MPTCP subflows to the peer do not establish over b: the joins of 3 connections in a row were refused or reset at once")
	})
	if s := status(); strings.Contains(s, "! a:") {
		t.Errorf("a flagged: %q", s)
	}
	// b cut from the peer: not MPTCP's fault, no flag.
	probed("timed out")
	probed("timed out")
	if s := status(); strings.Contains(s, "b joins fail") || strings.Contains(s, "! b") {
		t.Errorf("b unreached and still flagged: %q", s)
	}
	probed("")
	nstest.In(t, n.peer, "nft", "delete", "table", "inet", "strip")
	connect()
	wait("b ok again", func(s string) bool { return strings.Contains(s, ", b ok (1 subflow)") })
	if s := status(); strings.Contains(s, "\n!") {
		t.Errorf("a flag left: %q", s)
	}
}
