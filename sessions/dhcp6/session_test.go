package dhcp6

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"golang.org/x/sys/unix"

	"github.com/braid-router/braid/facts"
	"github.com/braid-router/braid/internal/nstest"
	"github.com/braid-router/braid/internal/sessiontest"
	"github.com/braid-router/braid/lab"
	"github.com/braid-router/braid/session"
)

// deadline bounds every wait on a condition: the suite runs on a busy
// machine, so it is a bound on a hang, not a measurement.
const deadline = 90 * time.Second

// rig is a box with a link wan2 to a router namespace whose link "down"
// runs Kea's DHCPv6 server, unmodified, delegating /56s of its pool.
type rig struct {
	t        *testing.T
	box, rtr string
	kea      lab.DHCP6Server
	keaCmd   *exec.Cmd
	keaLog   *nstest.SyncBuffer
	hub      *facts.Hub
	state    string
}

// newRig builds the namespaces and their link; startKea starts the
// server.
func newRig(t *testing.T) *rig {
	t.Helper()
	nstest.RequireRoot(t)
	r := &rig{t: t, box: nstest.New(t), rtr: nstest.New(t), state: t.TempDir()}
	for _, ns := range []string{r.box, r.rtr} {
		// Link-local addresses usable at once.
		nstest.In(t, ns, "sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0")
	}
	nstest.Run(t, "ip", "-n", r.rtr, "link", "add", "name", "down", "type", "veth", "peer", "name", "wan2", "netns", r.box)
	nstest.Run(t, "ip", "-n", r.rtr, "addr", "add", "2001:db8:102::1/64", "dev", "down", "nodad")
	nstest.Run(t, "ip", "-n", r.rtr, "link", "set", "dev", "down", "up")
	nstest.Run(t, "ip", "-n", r.box, "link", "set", "wan2", "up")
	r.kea = lab.ISP2DHCP6(t.TempDir())
	var err error
	if r.hub, err = facts.Open(facts.Options{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.hub.Close)
	return r
}

// startKea starts Kea with the rig's server configuration.
func (r *rig) startKea() {
	r.t.Helper()
	nstest.RequireBinary(r.t, "kea-dhcp6")
	conf := filepath.Join(r.kea.Dir, "kea-dhcp6.conf")
	if err := os.WriteFile(conf, []byte(r.kea.Config()), 0o600); err != nil {
		r.t.Fatal(err)
	}
	r.keaLog = &nstest.SyncBuffer{}
	args := append([]string{"netns", "exec", r.rtr}, r.kea.Command(conf, r.kea.Dir)...)
	r.keaCmd = exec.Command("ip", args...)
	r.keaCmd.Stdout, r.keaCmd.Stderr = r.keaLog, r.keaLog
	if err := r.keaCmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	cmd, log := r.keaCmd, r.keaLog
	r.t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if r.t.Failed() {
			r.t.Logf("kea-dhcp6:\n%s", log)
		}
	})
	waitFor(r.t, "Kea to listen", func() bool {
		if strings.Contains(log.String(), "DHCP6_INIT_FAIL") {
			r.t.Fatalf("Kea failed:\n%s", log)
		}
		return strings.Contains(log.String(), "DHCP6_STARTED")
	})
}

// waitFor polls cond until it holds, failing the test after deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	sessiontest.WaitFor(t, what, deadline, cond)
}

// start runs the client for cfg in the box's namespace until stopped.
func (r *rig) start(cfg Config) *sessiontest.Run {
	r.t.Helper()
	owner := Kind + "/" + strings.TrimPrefix(strings.TrimPrefix(cfg.For, "uplink/"), "tunnel/")
	c := &Client{StateDir: r.state}
	return sessiontest.Start(r.t, r.box, owner, r.hub, func(ctx context.Context, env *session.Env) error { return c.Run(ctx, cfg, env) })
}

// prefix waits for the hub's prefix for what, and returns it with its
// fact.
func (r *rig) prefix(what string) (facts.Prefix, facts.Fact) {
	r.t.Helper()
	var p facts.Prefix
	waitFor(r.t, "a delegated prefix for "+what, func() bool {
		var ok bool
		p, ok = r.hub.Set().Prefix(what)
		return ok
	})
	for _, e := range r.hub.Set().Entries() {
		if e.Fact.Prefix != nil && e.Fact.Prefix.For == what {
			return p, e.Fact
		}
	}
	r.t.Fatal("the prefix went")
	return p, facts.Fact{}
}

var uplinkCfg = Config{For: "uplink/isp2", Interface: "wan2", DUIDLink: "wan2"}

// capture is tshark capturing DHCPv6 on the box's wan2.
func (r *rig) capture() *nstest.Capture {
	r.t.Helper()
	return nstest.StartCapture(r.t, r.box, "wan2", "udp port 546 or udp port 547")
}

// Kea delegates a /56 of its pool with its resolver; the fact says so
// and expires with the valid lifetime; status shows it; a restart of
// braid rebinds the same prefix without releasing it; leaving the spec
// releases it, which Kea logs; tshark reads every message braid sent
// without a malformed packet or an expert warning.
func TestDelegationFromKea(t *testing.T) {
	r := newRig(t)
	r.startKea()
	cap := r.capture()
	before := time.Now()
	s := r.start(uplinkCfg)
	p, f := r.prefix("uplink/isp2")
	pool := netip.MustParsePrefix(lab.ISP2DelegationPool)
	if !pool.Contains(p.Prefix.Addr()) || p.Prefix.Bits() != lab.ISP2DelegatedLen {
		t.Errorf("prefix %s, want a /%d of %s", p.Prefix, lab.ISP2DelegatedLen, pool)
	}
	if p.Link != "wan2" || len(p.DNS) != 1 || p.DNS[0] != netip.MustParseAddr(lab.ISP2ResolverV6) || p.Server == "" {
		t.Errorf("fact %+v: want link wan2, dns %s and the server's DUID", p, lab.ISP2ResolverV6)
	}
	iaid := IAID("uplink/isp2")
	if p.IAID != hex.EncodeToString(iaid[:]) {
		t.Errorf("IAID %s, want %x", p.IAID, iaid)
	}
	if lo, hi := before.Add(lab.ISP2PDValid), time.Now().Add(lab.ISP2PDValid); f.Expires.Before(lo) || f.Expires.After(hi) || f.Process {
		t.Errorf("the fact expires at %v (process-bound %v), want between %v and %v, surviving a restart", f.Expires, f.Process, lo, hi)
	}
	if lo, hi := before.Add(lab.ISP2PDPreferred), time.Now().Add(lab.ISP2PDPreferred); p.Preferred.Before(lo) || p.Preferred.After(hi) {
		t.Errorf("preferred until %v, want between %v and %v", p.Preferred, lo, hi)
	}
	if lo, hi := before.Add(lab.ISP2PDRenew), time.Now().Add(lab.ISP2PDRenew); p.Renew.Before(lo) || p.Renew.After(hi) {
		t.Errorf("renews at %v, want between %v and %v (Kea's T1)", p.Renew, lo, hi)
	}
	st, detail := s.Status()
	if st != session.Running || !strings.Contains(detail, "prefix "+p.Prefix.String()+" preferred for ") || !strings.Contains(detail, "from server "+p.Server) {
		t.Errorf("status %s: %q", st, detail)
	}

	// A restart (braid stopping): no Release; the same prefix again.
	s.Stop(t, session.ErrShutdown)
	s = r.start(uplinkCfg)
	waitFor(t, "the rebound delegation", func() bool {
		st, d := s.Status()
		return st == session.Running && strings.Contains(d, "renews in")
	})
	if again, _ := r.prefix("uplink/isp2"); again.Prefix != p.Prefix {
		t.Errorf("after a restart: prefix %s, want %s again", again.Prefix, p.Prefix)
	}
	if strings.Contains(r.keaLog.String(), "DHCP6_RELEASE_PD") {
		t.Errorf("a restart released the delegation:\n%s", r.keaLog)
	}

	// Leaving the spec: Release, which Kea sees.
	s.Stop(t, session.ErrRemoved)
	waitFor(t, "Kea to log the release", func() bool { return strings.Contains(r.keaLog.String(), "DHCP6_RELEASE_PD") })
	if _, ok := r.hub.Set().Prefix("uplink/isp2"); ok {
		t.Errorf("the prefix is still a fact after the release")
	}
	waitFor(t, "the capture to hold the Release", func() bool { return len(cap.Fields("dhcpv6.msgtype == 8", "frame.number")) > 0 })
	cap.Stop()
	types := cap.Fields("dhcpv6", "dhcpv6.msgtype")
	for _, want := range []string{"1", "2", "3", "7", "6", "8"} { // Solicit, Advertise, Request, Reply, Rebind, Release
		found := false
		for _, got := range types {
			found = found || got == want
		}
		if !found {
			t.Errorf("no DHCPv6 message of type %s in the capture: %v", want, types)
		}
	}
	if bad := cap.Fields("_ws.malformed || _ws.expert", "frame.number"); len(bad) > 0 {
		t.Errorf("tshark flags %d frames:\n%s", len(bad), strings.Join(cap.Fields("_ws.malformed || _ws.expert", "frame.number", "_ws.expert.message"), "\n"))
	}
	// What braid sent: from the link-local address, to ff02::1:2, port
	// 546 to 547, with the same DUID-LL and IAID throughout.
	sent := cap.Fields("udp.srcport == 546", "ipv6.src", "ipv6.dst", "dhcpv6.duidll.link_layer_addr", "dhcpv6.iaid")
	if len(sent) == 0 {
		t.Fatal("braid sent nothing tshark reads")
	}
	mac := strings.TrimSpace(nstest.In(t, r.box, "cat", "/sys/class/net/wan2/address"))
	for _, l := range sent {
		f := strings.Split(l, "|")
		if !strings.HasPrefix(f[0], "fe80::") || f[1] != "ff02::1:2" || f[2] != mac || strings.TrimPrefix(f[3], "0x") != hex.EncodeToString(iaid[:]) {
			t.Errorf("braid sent %q: want fe80::…|ff02::1:2|%s|%x", l, mac, iaid)
		}
	}
}

// A server with no prefix left answers NoPrefixAvail, and one that never
// answers is silence: either way, status says no prefix was delegated,
// and why, and the client keeps soliciting.
func TestNoPrefixDelegated(t *testing.T) {
	t.Run("silence", func(t *testing.T) {
		r := newRig(t)
		s := r.start(uplinkCfg)
		waitFor(t, "status to say nothing answered", func() bool {
			st, d := s.Status()
			return st == session.Waiting && strings.HasPrefix(d, "no prefix delegated: no Advertise in ")
		})
	})
	t.Run("NoPrefixAvail", func(t *testing.T) {
		r := newRig(t)
		// One /56 to give.
		r.kea.Pool = netip.MustParsePrefix("2001:db8:d200::/56")
		r.startKea()
		a := r.start(Config{For: "uplink/a", Interface: "wan2", DUIDLink: "wan2"})
		r.prefix("uplink/a")
		a.Stop(t, session.ErrShutdown) // holds it still
		b := r.start(Config{For: "uplink/b", Interface: "wan2", DUIDLink: "wan2"})
		waitFor(t, "status to say the server has no prefix", func() bool {
			st, d := b.Status()
			return st == session.Waiting && strings.HasPrefix(d, "no prefix delegated: ") && strings.Contains(d, "NoPrefixAvail")
		})
		if _, ok := r.hub.Set().Prefix("uplink/b"); ok {
			t.Error("a prefix for b")
		}
	})
}

// A client whose facts were lost (a new state directory's facts, an
// expired fact) solicits again with the same DUID and IAID, and Kea hands
// the same prefix back.
func TestSamePrefixWithoutFacts(t *testing.T) {
	r := newRig(t)
	r.startKea()
	s := r.start(uplinkCfg)
	p, _ := r.prefix("uplink/isp2")
	s.Stop(t, session.ErrShutdown)
	var err error
	if r.hub, err = facts.Open(facts.Options{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.hub.Close)
	r.start(uplinkCfg)
	if again, _ := r.prefix("uplink/isp2"); again.Prefix != p.Prefix {
		t.Errorf("prefix %s, want %s again", again.Prefix, p.Prefix)
	}
}

// Without a link to take a DUID-LL from, the client makes a DUID-LLT once
// and keeps it in the state directory.
func TestDUIDLLTIsKept(t *testing.T) {
	dir := t.TempDir()
	d1, err := DUID("", dir)
	if err != nil {
		t.Fatal(err)
	}
	d2, err := DUID("", dir)
	if err != nil {
		t.Fatal(err)
	}
	if d1.DUIDType() != dhcpv6.DUID_LLT && d1.DUIDType() != dhcpv6.DUID_UUID {
		t.Errorf("DUID %v: want a DUID-LLT (or a DUID-UUID on a box without Ethernet)", d1)
	}
	if !bytes.Equal(d1.ToBytes(), d2.ToBytes()) {
		t.Errorf("DUID %x, then %x", d1.ToBytes(), d2.ToBytes())
	}
	if _, err := DUID("", ""); err == nil {
		t.Error("a DUID-LLT without a state directory to keep it")
	}
	if a, b := IAID("uplink/a"), IAID("tunnel/a"); a == b || a != IAID("uplink/a") {
		t.Errorf("IAIDs %x, %x", a, b)
	}
}

// openTUN makes the TUN link name in namespace ns (IFF_TUN, no packet
// information: bare IPv6 packets, as braid's tunnel session makes it)
// and returns its file, which the test reads and writes.
func openTUN(t *testing.T, ns, name string) *os.File {
	t.Helper()
	var f *os.File
	nstest.Do(t, ns, func() error {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			return err
		}
		ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			unix.Close(fd)
			return fmt.Errorf("TUNSETIFF %s: %w", name, err)
		}
		if err := unix.SetNonblock(fd, true); err != nil {
			return err
		}
		f = os.NewFile(uintptr(fd), name)
		return nil
	})
	t.Cleanup(func() { f.Close() })
	return f
}

// pipe copies every packet read from a to b until a is closed.
func pipe(a, b *os.File) {
	buf := make([]byte, 65536)
	for {
		n, err := a.Read(buf)
		if err != nil {
			return
		}
		b.Write(buf[:n])
	}
}

// On a TUN link, point-to-point, without a MAC address, its link-local
// address set by hand as IPV6CP would: the client takes its DUID from
// another link's MAC (the tunnel's via uplink's), sends from the
// link-local address to ff02::1:2, and Kea, on the far end's TUN link,
// delegates a prefix for the tunnel.
func TestDelegationOverATUNLink(t *testing.T) {
	nstest.RequireRoot(t)
	r := &rig{t: t, box: nstest.New(t), rtr: nstest.New(t), state: t.TempDir()}
	box, far := openTUN(t, r.box, "ppp6"), openTUN(t, r.rtr, "down")
	go pipe(box, far)
	go pipe(far, box)
	nstest.Run(t, "ip", "-n", r.box, "addr", "add", "fe80::1/64", "dev", "ppp6", "nodad")
	nstest.Run(t, "ip", "-n", r.box, "link", "set", "ppp6", "up")
	nstest.Run(t, "ip", "-n", r.rtr, "addr", "add", "fe80::2/64", "dev", "down", "nodad")
	nstest.Run(t, "ip", "-n", r.rtr, "addr", "add", "2001:db8:102::1/64", "dev", "down", "nodad")
	nstest.Run(t, "ip", "-n", r.rtr, "link", "set", "dev", "down", "up")
	// The via uplink: an Ethernet link whose MAC makes the DUID.
	nstest.Run(t, "ip", "-n", r.box, "link", "add", "wan1", "address", "00:24:d4:aa:bb:cc", "type", "veth", "peer", "name", "wan1p")
	r.kea = lab.ISP2DHCP6(t.TempDir())
	var err error
	if r.hub, err = facts.Open(facts.Options{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.hub.Close)
	r.startKea()
	cfg := Config{For: "tunnel/sixpe", Interface: "ppp6", DUIDLink: "wan1"}
	s := r.start(cfg)
	p, _ := r.prefix("tunnel/sixpe")
	if !netip.MustParsePrefix(lab.ISP2DelegationPool).Contains(p.Prefix.Addr()) || p.Link != "ppp6" {
		t.Errorf("prefix %s on %s, want one of Kea's on ppp6", p.Prefix, p.Link)
	}
	if !strings.Contains(r.keaLog.String(), "duid=[00:03:00:01:00:24:d4:aa:bb:cc]") {
		t.Errorf("Kea did not see the DUID-LL of wan1's MAC:\n%s", r.keaLog)
	}
	if st, d := s.Status(); st != session.Running || !strings.Contains(d, p.Prefix.String()) {
		t.Errorf("status %s: %q", st, d)
	}
	s.Stop(t, session.ErrRemoved)
	waitFor(t, "Kea to log the release", func() bool { return strings.Contains(r.keaLog.String(), "DHCP6_RELEASE_PD") })
}

// A link that is down waits, saying so; a held delegation survives the
// link going down and coming back, rebound with the server.
func TestLinkDownAndBack(t *testing.T) {
	r := newRig(t)
	r.startKea()
	nstest.Run(t, "ip", "-n", r.box, "link", "set", "wan2", "down")
	s := r.start(uplinkCfg)
	waitFor(t, "status to say the link is down", func() bool {
		st, d := s.Status()
		return st == session.Waiting && d == "no prefix delegated: link wan2 is down"
	})
	nstest.Run(t, "ip", "-n", r.box, "link", "set", "wan2", "up")
	p, _ := r.prefix("uplink/isp2")
	nstest.Run(t, "ip", "-n", r.box, "link", "set", "wan2", "down")
	waitFor(t, "status to say the link is down and the prefix held", func() bool {
		st, d := s.Status()
		return st == session.Waiting && strings.HasPrefix(d, "link wan2 is down; holds "+p.Prefix.String()+" until ")
	})
	rebinds := strings.Count(r.keaLog.String(), "DHCP6_PD_LEASE_RENEW")
	nstest.Run(t, "ip", "-n", r.box, "link", "set", "wan2", "up")
	waitFor(t, "the delegation rebound", func() bool {
		st, _ := s.Status()
		return st == session.Running && strings.Count(r.keaLog.String(), "DHCP6_PD_LEASE_RENEW") > rebinds
	})
	if again, _ := r.prefix("uplink/isp2"); again.Prefix != p.Prefix {
		t.Errorf("prefix %s after the link came back, want %s", again.Prefix, p.Prefix)
	}
}
