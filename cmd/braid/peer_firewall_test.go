package main

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/braid-router/braid/internal/nstest"
	"github.com/braid-router/braid/reconcile"
)

// peerFw is a peer and two hosts that reach it: mgmt, inside its
// management.allow, and other, outside it.
//
//	mgmt (m0) 10.78.1.2, fd78:1::2 ── (p0) peer (p1) ── (o0) other 10.78.2.2, fd78:2::2
//	                       10.78.1.1, fd78:1::1   10.78.2.1, fd78:2::1
type peerFw struct {
	t                 *testing.T
	mgmt, peer, other string
	b                 *box
}

var (
	fwPeerM4 = netip.MustParseAddr("10.78.1.1") // the peer, as mgmt reaches it
	fwPeerM6 = netip.MustParseAddr("fd78:1::1")
	fwPeerO4 = netip.MustParseAddr("10.78.2.1") // the peer, as other reaches it
	fwPeerO6 = netip.MustParseAddr("fd78:2::1")
)

// sshPort is where the peer's stand-in SSH server listens.
const sshPort = 22

func newPeerFw(t *testing.T) *peerFw {
	t.Helper()
	nstest.RequireRoot(t)
	n := &peerFw{t: t, mgmt: nstest.New(t), peer: nstest.New(t), other: nstest.New(t)}
	nstest.Run(t, "ip", "-n", n.mgmt, "link", "add", "m0", "type", "veth", "peer", "name", "p0", "netns", n.peer)
	nstest.Run(t, "ip", "-n", n.peer, "link", "add", "p1", "type", "veth", "peer", "name", "o0", "netns", n.other)
	addrsUp(t, []nsAddr{
		{n.mgmt, "m0", "10.78.1.2/24"}, {n.mgmt, "m0", "fd78:1::2/64"},
		{n.peer, "p0", "10.78.1.1/24"}, {n.peer, "p0", "fd78:1::1/64"},
		{n.peer, "p1", "10.78.2.1/24"}, {n.peer, "p1", "fd78:2::1/64"},
		{n.other, "o0", "10.78.2.2/24"}, {n.other, "o0", "fd78:2::2/64"},
	}...)
	// A stand-in SSH server on the peer: a TCP listener on port 22, both
	// families.
	nstest.ServeTCP(t, n.peer, "[::]:"+strconv.Itoa(sshPort), func(net.Conn) {})
	n.b = nsBox(t, n.peer)
	return n
}

// spec is a peer spec listening on peerPort; management, if not empty,
// is its management section (a YAML flow mapping).
func (n *peerFw) spec(management string) string {
	s := fmt.Sprintf(`apiVersion: braid/v1alpha1
kind: Peer
metadata: {name: vps}
spec:
  listen: "[::]:%d"
  key: {value: peer-firewall-test}
`, peerPort)
	if management != "" {
		s += "  management: " + management + "\n"
	}
	return s
}

// Management sections: the mgmt namespace's prefixes, and prefixes that
// leave it out.
const (
	allowMgmt  = "{allow: [10.78.1.0/24, fd78:1::/64]}"
	allowOther = "{allow: [10.78.9.0/24, fd78:9::/64]}"
)

// dial connects from namespace ns to dst within timeout.
func dial(t *testing.T, ns string, dst netip.AddrPort, timeout time.Duration) error {
	t.Helper()
	var derr error
	nstest.Do(t, ns, func() error {
		c, err := net.DialTimeout("tcp", dst.String(), timeout)
		if err == nil {
			c.Close()
		}
		derr = err
		return nil
	})
	return derr
}

// reaches fails the test unless ns connects to dst. The deadline is a
// bound on a hang on a busy machine, not a measurement.
func (n *peerFw) reaches(ns, name string, dst netip.AddrPort) {
	n.t.Helper()
	if err := dial(n.t, ns, dst, 30*time.Second); err != nil {
		n.t.Errorf("%s does not reach %s: %v", name, dst, err)
	}
}

// blocked fails the test if ns connects to dst: a dropped SYN is
// silence, so this waits for the dial to time out.
func (n *peerFw) blocked(ns, name string, dst netip.AddrPort) {
	n.t.Helper()
	if err := dial(n.t, ns, dst, 2*time.Second); err == nil {
		n.t.Errorf("%s reaches %s, want it dropped", name, dst)
	}
}

// udpIn is what the peer's kernel counts of the UDP datagrams that got
// past its input hook (its firewall): delivered to a socket, to no socket
// (no port), or in error, IPv4 and IPv6 together.
func (n *peerFw) udpIn() int {
	n.t.Helper()
	total := 0
	snmp := strings.Split(nstest.In(n.t, n.peer, "cat", "/proc/net/snmp"), "\n")
	for i := 0; i+1 < len(snmp); i++ {
		names, values := strings.Fields(snmp[i]), strings.Fields(snmp[i+1])
		if len(names) == 0 || names[0] != "Udp:" || len(values) != len(names) || values[0] != "Udp:" {
			continue
		}
		for j, name := range names {
			if name == "InDatagrams" || name == "NoPorts" || name == "InErrors" {
				v, _ := strconv.Atoi(values[j])
				total += v
			}
		}
		break
	}
	for _, l := range strings.Split(nstest.In(n.t, n.peer, "cat", "/proc/net/snmp6"), "\n") {
		if f := strings.Fields(l); len(f) == 2 && (f[0] == "Udp6InDatagrams" || f[0] == "Udp6NoPorts" || f[0] == "Udp6InErrors") {
			v, _ := strconv.Atoi(f[1])
			total += v
		}
	}
	return total
}

// udpPasses sends a datagram from namespace other to each of dsts, then
// one to the listener's port, which the firewall always lets in, and
// reports how many of dsts got past the peer's input hook once at least
// want of them and the last one have. The datagrams cross the same link
// in order (the kernel may still process them on two CPUs, so a want
// above zero waits for all it wants), and once the last one is counted,
// those before it that passed are, as a rule, counted too.
func (n *peerFw) udpPasses(to netip.Addr, want int, dsts ...uint16) int {
	n.t.Helper()
	before := n.udpIn()
	nstest.Do(n.t, n.other, func() error {
		for _, port := range append(dsts, peerPort) {
			c, err := net.Dial("udp", netip.AddrPortFrom(to, port).String())
			if err != nil {
				return err
			}
			_, err = c.Write([]byte("braid peer firewall test"))
			c.Close()
			if err != nil {
				return err
			}
		}
		return nil
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := n.udpIn() - before
		if got > want {
			return got - 1
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("of the %d datagrams from other to %s ports %v and the listener's %d, %d got past the peer's firewall, want at least %d", len(dsts)+1, to, dsts, peerPort, got, want+1)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// forgetNeighbours flushes every neighbour cache, so that the IPv6
// connections that follow need neighbour discovery through the peer's
// firewall.
func (n *peerFw) forgetNeighbours() {
	n.t.Helper()
	for _, ns := range []string{n.mgmt, n.peer, n.other} {
		nstest.Run(n.t, "ip", "-n", ns, "neigh", "flush", "all")
	}
}

// startPeer runs `braid run -f spec` in the peer namespace and waits for
// its first pass and its session.
func (n *peerFw) startPeer(spec string, args ...string) *daemon {
	n.t.Helper()
	return runPeer(n.b, append([]string{"-f", spec}, args...)...)
}

// nft is the peer namespace's whole ruleset, without counters.
func (n *peerFw) nft() string {
	n.t.Helper()
	return nstest.In(n.t, n.peer, "nft", "-s", "list", "ruleset")
}

// A peer spec with management.allow keeps SSH from those prefixes open
// and drops it from elsewhere; the shadowsocks listener is open to all,
// in TCP and UDP, IPv4 and IPv6 (neighbour discovery and ping pass);
// without management.allow braid drops nothing, and its table goes.
func TestPeerFirewallKeepsManagementOpen(t *testing.T) {
	n := newPeerFw(t)
	dir := t.TempDir()
	spec := filepath.Join(dir, "peer.yaml")
	writeSpecTo(t, spec, n.spec(allowMgmt))
	d := n.startPeer(spec)
	n.forgetNeighbours()
	for _, fam := range []struct {
		name         string
		fromM, fromO netip.Addr
	}{{"IPv6", fwPeerM6, fwPeerO6}, {"IPv4", fwPeerM4, fwPeerO4}} {
		t.Run(fam.name, func(t *testing.T) {
			n.t = t
			defer func() { n.t = d.b.t }()
			n.reaches(n.mgmt, "mgmt", netip.AddrPortFrom(fam.fromM, sshPort))
			n.reaches(n.mgmt, "mgmt", netip.AddrPortFrom(fam.fromM, peerPort))
			n.reaches(n.other, "other", netip.AddrPortFrom(fam.fromO, peerPort))
			n.blocked(n.other, "other", netip.AddrPortFrom(fam.fromO, sshPort))
			if got := n.udpPasses(fam.fromO, 0, sshPort, 9); got != 0 {
				t.Errorf("%d of other's datagrams to ports 22 and 9 got past the firewall, want none", got)
			}
			nstest.In(t, n.other, "ping", "-c", "1", "-W", "10", fam.fromO.String())
		})
	}
	if t.Failed() {
		t.Fatalf("braid's table on the peer:\n%s", n.nft())
	}

	// Without management.allow: no drop at all, and braid's table goes.
	st, _ := d.status()
	writeSpecTo(t, spec, n.spec(""))
	// The revision changes as the spec is read, before its pass ends: the
	// pass that applies it is the next applying one.
	d.until("the spec without management", func(now reconcile.Status) bool {
		return converged(now) && now.Revision != st.Revision && now.Applying > st.Applying
	})
	if got := n.nft(); strings.Contains(got, "table inet braid") {
		t.Errorf("braid's table stays without management.allow:\n%s", got)
	}
	n.forgetNeighbours()
	for _, a := range []netip.Addr{fwPeerO6, fwPeerO4} {
		n.reaches(n.other, "other", netip.AddrPortFrom(a, sshPort))
		n.reaches(n.other, "other", netip.AddrPortFrom(a, peerPort))
		if got := n.udpPasses(a, 2, sshPort, 9); got != 2 {
			t.Errorf("%d of other's datagrams to %s ports 22 and 9 got past, want both", got, a)
		}
	}
	for _, a := range []netip.Addr{fwPeerM6, fwPeerM4} {
		n.reaches(n.mgmt, "mgmt", netip.AddrPortFrom(a, sshPort))
	}
}

// On a peer, a change that cuts management off is reverted when nobody
// confirms it, with `braid apply --confirm` and with `braid run
// --confirm`, as on a router.
func TestPeerConfirmRevertsACutOfManagement(t *testing.T) {
	n := newPeerFw(t)
	b := n.b
	ssh := netip.AddrPortFrom(fwPeerM4, sshPort)
	good, cut := writeSpec(t, n.spec(allowMgmt)), writeSpec(t, n.spec(allowOther))

	// The cut is real: applied, mgmt cannot reach SSH.
	b.must(0, "apply", "-f", good)
	before := n.nft()
	n.reaches(n.mgmt, "mgmt", ssh)
	b.must(0, "apply", "--confirm", "10m", "-f", cut)
	reverter := b.pendingNow(t).Reverter
	n.blocked(n.mgmt, "mgmt", ssh)
	b.must(0, "confirm")
	waitGone(t, reverter)

	// Unconfirmed, it is reverted: mgmt reaches SSH again, and the
	// ruleset is what it was.
	b.must(0, "apply", "-f", good)
	b.must(0, "apply", "--confirm", "2s", "-f", cut)
	b.waitReverted(t, 60*time.Second)
	if after := n.nft(); after != before {
		t.Errorf("apply --confirm: the revert did not restore the peer's firewall:\n%s", diffLines(before, after))
	}
	n.reaches(n.mgmt, "mgmt", ssh)
	b.must(0, "plan", "-f", good)

	// The daemon: a revision that cuts management is reverted and
	// quarantined unless confirmed.
	dir := t.TempDir()
	spec := filepath.Join(dir, "peer.yaml")
	writeSpecTo(t, spec, n.spec(allowMgmt))
	d := n.startPeer(spec, "--confirm", "2s")
	writeSpecTo(t, spec, n.spec(allowOther))
	d.unconfirmedReverted("2s")
	if after := n.nft(); after != before {
		t.Errorf("braid run --confirm: the revert did not restore the peer's firewall:\n%s", diffLines(before, after))
	}
	n.reaches(n.mgmt, "mgmt", ssh)
	d.stop(syscall.SIGTERM)
	if _, err := os.Stat(filepath.Join(b.stateDir, b.ns, pendingFile)); err == nil {
		t.Errorf("a confirmation is still pending")
	}
}

// management.probes are a peer's trial targets, as a router's are: a
// probe of the peer's own listener reverts a revision that moves it
// (which would leave every box pointed at the old port), with no one on
// site, and the listener and the firewall come back as they were.
func TestPeerProbesRevertAMovedListener(t *testing.T) {
	n := newPeerFw(t)
	listen := fmt.Sprintf(`listen: "[::]:%d"`, peerPort)
	good := n.spec(fmt.Sprintf(`{allow: [10.78.1.0/24, fd78:1::/64], probes: [{tcp: "%s"}]}`, netip.AddrPortFrom(fwPeerM4, peerPort)))
	moved := strings.Replace(good, listen, fmt.Sprintf(`listen: "[::]:%d"`, peerPort+1), 1)
	if moved == good {
		t.Fatalf("no %s in the spec:\n%s", listen, good)
	}
	spec := filepath.Join(t.TempDir(), "peer.yaml")
	writeSpecTo(t, spec, good)
	d := n.startPeer(spec, "--probe-window", "2s")
	before := n.nft()
	writeSpecTo(t, spec, moved)
	st := d.until("the revert", func(st reconcile.Status) bool {
		s, _ := sessionIn(st, "session[peer/shadowsocks]")
		return len(st.Quarantined) == 1 && st.Triggered["revert"] > 0 && peerRunning(st) &&
			strings.Contains(s.Detail, fmt.Sprintf(":%d", peerPort))
	})
	if want := "tcp " + netip.AddrPortFrom(fwPeerM4, peerPort).String(); !strings.Contains(st.Quarantined[0].Reason, want) {
		t.Errorf("quarantine reason %q does not name the probe %s", st.Quarantined[0].Reason, want)
	}
	if after := n.nft(); after != before {
		t.Errorf("the revert did not restore the peer's firewall:\n%s", diffLines(before, after))
	}
	n.reaches(n.other, "other", netip.AddrPortFrom(fwPeerO4, peerPort))
}
