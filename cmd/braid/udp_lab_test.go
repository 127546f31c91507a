package main

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/braid-router/braid/internal/nstest"
	"github.com/braid-router/braid/lab"
	"github.com/braid-router/braid/lab/labtest"
	"github.com/braid-router/braid/reconcile"
	"github.com/braid-router/braid/reconcile/plan"
	"github.com/braid-router/braid/session"
)

// quicPort is UDP/443, which udp: drop rejects.
const quicPort = 443

// udpSpec is aggregationSpec with aggregation.udp set.
func udpSpec(t *testing.T, port int, cipher, udp string) string {
	return aggregationSpec(t, port, cipher, ssPassword) + "    udp: " + udp + "\n"
}

// udpSteering reports whether the daemon's last pass converged with the
// proxy session running with aggregation.udp at udp, its status naming
// what it listens for, and the steering chain's rule id among the
// objects. A session is updated after the kernel objects of its pass,
// and its process-bound objects come with the pass after it starts.
func udpSteering(udp, listens, id string) func(reconcile.Status) bool {
	return func(st reconcile.Status) bool {
		s, ok := sessionIn(st, "session[proxy/aggregation]")
		if !converged(st) || !ok || s.State != session.Running || !strings.Contains(s.Detail, "("+listens+")") {
			return false
		}
		if !slices.ContainsFunc(s.Config, func(f plan.Field) bool { return f.Name == "udp" && f.Value == udp }) {
			return false
		}
		return slices.ContainsFunc(st.Objects, func(o plan.Status) bool {
			return o.Address == "nft.rule[inet braid prerouting_tproxy:"+id+"]"
		})
	}
}

// udpSeen asks the Internet server's UDP whoami at server from the LAN
// client (from bind, when set) until it answers with want's address or
// 30 s pass, and returns what it saw last (a connected socket: the
// answer came from server).
func udpSeen(l *lab.Lab, server, bind, want string) (string, error) {
	var seen netip.AddrPort
	var err error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		seen, err = l.Whoami(ctx, lab.RoleLAN, "udp", server, bind)
		cancel()
		if err == nil && seen.Addr().String() == want {
			break
		}
	}
	if err != nil {
		return "", err
	}
	return seen.String(), nil
}

// udpRefused sends datagrams from the LAN client to dst on a connected
// socket until one is answered, refused (the ICMP port unreachable the
// kernel turns into ECONNREFUSED) or 30 s pass, and returns how it ended:
// nil for an answer.
func udpRefused(l *lab.Lab, dst string) error {
	return l.Do(lab.RoleLAN, func() error {
		c, err := net.Dial("udp", dst)
		if err != nil {
			return err
		}
		defer c.Close()
		buf := make([]byte, 256)
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
			if _, err := c.Write([]byte("whoami\n")); err != nil {
				return err
			}
			c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			_, err := c.Read(buf)
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				return err
			}
		}
		return os.ErrDeadlineExceeded
	})
}

// TestUDPThroughShadowsocksLibev: braid's box against Debian's
// shadowsocks-libev (`ss-server -u`) in the peer namespace. With udp:
// drop, a LAN datagram to port 443 is refused at once in both families
// (ECONNREFUSED on the client's connected socket), though the Internet
// server listens there, while UDP to another port goes direct; udp:
// direct reaches both ports directly (IPv4 NATed to the first uplink's
// address, IPv6 routed from the client's own); udp: peer, taken in
// place by the running session, and then with each cipher: the LAN
// client's UDP whoami reaches the server from the peer's address in
// both families, and the answer comes back from the server's address.
func TestUDPThroughShadowsocksLibev(t *testing.T) {
	nstest.RequireBinary(t, "ss-server")
	l := labtest.New(t)
	b := labBoxOf(t, l)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// The Internet server answers on UDP/443 too, so that a refusal there
	// is the box's.
	quic4 := net.JoinHostPort(lab.ServerV4, strconv.Itoa(quicPort))
	quic6 := net.JoinHostPort(lab.ServerV6, strconv.Itoa(quicPort))
	if err := l.Start(ctx, lab.Process{Name: "quic", Role: lab.RoleInet, Serve: []string{"-whoami-udp", quic4, "-whoami-udp", quic6}}); err != nil {
		t.Fatal(err)
	}
	ciphers := ssCiphers
	port := func(i int) int { return 8481 + i }
	startSSServers(ctx, t, l, port)
	whoami4 := net.JoinHostPort(lab.ServerV4, strconv.Itoa(lab.WhoamiPort))
	whoami6 := net.JoinHostPort(lab.ServerV6, strconv.Itoa(lab.WhoamiPort))
	expect := func(what, server, want string) {
		t.Helper()
		got, err := udpSeen(l, server, "", want)
		if ap, perr := netip.ParseAddrPort(got); err != nil || perr != nil || ap.Addr().String() != want {
			t.Errorf("%s: LAN UDP to %s: the server saw %q (%v), want %s", what, server, got, err, want)
		}
	}

	spec := writeSpec(t, udpSpec(t, port(0), ciphers[0], "drop"))
	d := b.startDaemon("-f", spec)
	d.within(60*time.Second, "udp: drop: the proxy running and QUIC rejected", udpSteering("drop", "tcp", "quic"))
	flushLANNeighbours(t, l)
	for _, dst := range []string{quic4, quic6} {
		if err := udpRefused(l, dst); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("udp: drop: LAN UDP to %s ended with %v, want it refused", dst, err)
		}
	}
	expect("udp: drop, another port", whoami4, lab.BoxWAN1V4)
	expect("udp: drop, another port", whoami6, lab.LANClientV6)

	writeSpecTo(t, spec, udpSpec(t, port(0), ciphers[0], "direct"))
	d.within(60*time.Second, "udp: direct", udpSteering("direct", "tcp", "tcp-v6"))
	for _, server := range []string{quic4, whoami4} {
		expect("udp: direct", server, lab.BoxWAN1V4)
	}
	for _, server := range []string{quic6, whoami6} {
		expect("udp: direct", server, lab.LANClientV6)
	}

	// udp: peer, in place: the running session starts its UDP relay.
	writeSpecTo(t, spec, udpSpec(t, port(0), ciphers[0], "peer"))
	d.within(60*time.Second, "udp: peer", udpSteering("peer", "tcp and udp", "udp-v6"))
	for _, server := range []string{whoami4, quic4} {
		expect("udp: peer, "+ciphers[0], server, lab.PeerV4)
	}
	for _, server := range []string{whoami6, quic6} {
		expect("udp: peer, "+ciphers[0], server, lab.PeerV6)
	}
	if logs := d.logs.String(); !strings.Contains(logs, "session reconfigured in place") || strings.Contains(logs, "session restarts") {
		t.Errorf("udp changed: the proxy session was not reconfigured in place:\n%s", logs)
	}
	d.stop(syscall.SIGTERM)

	for i, cipher := range ciphers[1:] {
		d := b.startDaemon("-f", writeSpec(t, udpSpec(t, port(i+1), cipher, "peer")))
		d.within(60*time.Second, cipher+": udp: peer", udpSteering("peer", "tcp and udp", "udp-v6"))
		expect("udp: peer, "+cipher, whoami4, lab.PeerV4)
		expect("udp: peer, "+cipher, whoami6, lab.PeerV6)
		if i < len(ciphers)-2 {
			d.stop(syscall.SIGTERM)
			continue
		}
		// kill -9: the steering stays in the kernel, inert (tproxy finds
		// no transparent UDP socket), and LAN UDP takes plain routing.
		d.stop(syscall.SIGKILL)
		expect("braid killed", whoami4, lab.BoxWAN1V4)
		expect("braid killed", whoami6, lab.LANClientV6)
		if out, err := l.Run(context.Background(), lab.RoleBox, "nft", "list", "chain", "inet", "braid", "prerouting_tproxy"); err != nil || !strings.Contains(out, "meta l4proto udp tproxy") {
			t.Errorf("braid killed: the UDP steering is not left in the kernel (%v):\n%s", err, out)
		}
	}

	// Failover: one LAN flow (one source port, one association) relayed
	// through the peer goes on when the first uplink is blackholed: its
	// datagrams to the peer leave by the next uplink once the health
	// tracker takes the first out of the main table.
	spec = udpSpec(t, port(0), ciphers[0], "peer")
	for _, p := range []string{"    priority: 10\n", "    priority: 20\n"} {
		spec = strings.Replace(spec, p, p+`    health: {probes: [{icmp: `+lab.ServerV4+`}], interval: 200ms}`+"\n", 1)
	}
	d = b.startDaemon("-f", writeSpec(t, spec))
	d.within(60*time.Second, "udp: peer, with health", udpSteering("peer", "tcp and udp", "udp-v6"))
	flow := net.JoinHostPort(lab.LANClientV4, "40400")
	for _, when := range []string{"before", "after"} {
		if when == "after" {
			injectFault(t, l, lab.RoleISP1, faultBlackhole, 0)
			d.until("isp1 out of the main table", func(st reconcile.Status) bool {
				healthy, known := healthOf(st, "isp1")
				return known && !healthy && converged(st) && !hasDefault(t, l.NS(lab.RoleBox), lab.BoxWAN1Dev)
			})
		}
		got, err := udpSeen(l, whoami4, flow, lab.PeerV4)
		if ap, perr := netip.ParseAddrPort(got); err != nil || perr != nil || ap.Addr().String() != lab.PeerV4 {
			t.Errorf("%s isp1 is blackholed: LAN UDP from %s to %s: the server saw %q (%v), want the peer's %s", when, flow, whoami4, got, err, lab.PeerV4)
		}
	}
	clearFault(t, l, lab.RoleISP1)
}

// TestUDPThroughBraidPeer: braid on both ends. `braid run -f peer.yaml`
// in the lab's peer namespace relays UDP on its listen address; braid's
// box with udp: peer relays the LAN client's UDP whoami to it, and the
// Internet server sees the peer's address in both families.
func TestUDPThroughBraidPeer(t *testing.T) {
	l := labtest.New(t)
	b := labBoxOf(t, l)
	const port = 8490
	const cipher = "aes-128-gcm"
	braidPeerDaemon(t, nsBox(t, l.NS(lab.RolePeer)), port, cipher, ssPassword)
	d := b.startDaemon("-f", writeSpec(t, udpSpec(t, port, cipher, "peer")))
	d.within(60*time.Second, "udp: peer", udpSteering("peer", "tcp and udp", "udp-v6"))
	for _, c := range []struct{ server, peer string }{
		{net.JoinHostPort(lab.ServerV4, strconv.Itoa(lab.WhoamiPort)), lab.PeerV4},
		{net.JoinHostPort(lab.ServerV6, strconv.Itoa(lab.WhoamiPort)), lab.PeerV6},
	} {
		got, err := udpSeen(l, c.server, "", c.peer)
		if ap, perr := netip.ParseAddrPort(got); err != nil || perr != nil || ap.Addr().String() != c.peer {
			t.Errorf("LAN UDP to %s: the server saw %q (%v), want the peer's %s", c.server, got, err, c.peer)
		}
	}
}
