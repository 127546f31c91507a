package main

import (
	"encoding/hex"
	"net/netip"
	"os/exec"
	"path/filepath"
	"slices"
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

// dhcpSpec is specs/lab-dhcp.yaml: isp1's IPv4 by DHCP from the lab's
// ONT, with vendor class neufbox_braid and hostname braid-lab.
func dhcpSpec(t *testing.T) string {
	t.Helper()
	return readFile(t, "../../specs/lab-dhcp.yaml")
}

// leaseIn returns the lease fact of isp1 in st.
func leaseIn(st reconcile.Status) (facts.Entry, bool) {
	for _, e := range st.Facts.Entries {
		if e.Owner == "dhcp4/isp1" && e.Fact.Lease4 != nil {
			return e, true
		}
	}
	return facts.Entry{}, false
}

// bound waits until isp1 holds a lease of addr and the kernel has it.
func (d *daemon) bound(addr string) reconcile.Status {
	d.b.t.Helper()
	return d.until("a lease of "+addr+" on wan1, converged", func(st reconcile.Status) bool {
		e, ok := leaseIn(st)
		c, _ := sessionIn(st, "session[dhcp4/isp1]")
		return ok && e.Fact.Lease4.Address.Addr().String() == addr && c.State == session.Running && converged(st) &&
			strings.Contains(d.b.ip("-4", "addr", "show", "dev", "wan1"), "inet "+addr+"/")
	})
}

// dhcpLab builds a lab for a DHCP test and its box; without the lab's
// own DHCP server in isp1 when the test runs its own.
func dhcpLab(t *testing.T, withServer bool) (*lab.Lab, *box) {
	t.Helper()
	nstest.RequireBinary(t, "dnsmasq")
	cfg := labtest.Config(t)
	if !withServer {
		topo := lab.Default()
		topo.Processes = slices.DeleteFunc(topo.Processes, func(p lab.Process) bool { return p.Name == lab.DHCP4Process })
		cfg.Topology = &topo
	}
	l := labtest.Up(t, cfg)
	return l, labBoxOf(t, l)
}

// dnsmasq is a DHCP server a test runs in isp1 and stops when it wants.
type dnsmasq struct {
	cmd *exec.Cmd
	log *nstest.SyncBuffer
}

// startDHCP runs srv in l's isp1 until stop or the end of the test.
func startDHCP(t *testing.T, l *lab.Lab, srv lab.DHCP4Server) *dnsmasq {
	t.Helper()
	argv := srv.Command()
	cmd := exec.Command("ip", append([]string{"netns", "exec", l.NS(lab.RoleISP1)}, argv...)...)
	d := &dnsmasq{cmd: cmd, log: &nstest.SyncBuffer{}}
	cmd.Stdout, cmd.Stderr = d.log, d.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.stop()
		if t.Failed() {
			t.Logf("dnsmasq:\n%s", d.log)
		}
	})
	mustWait(t, "dnsmasq to listen", func() bool { return strings.Contains(d.log.String(), "DHCP, sockets bound") })
	return d
}

func (d *dnsmasq) stop() {
	if d.cmd.ProcessState == nil {
		d.cmd.Process.Signal(syscall.SIGTERM)
		d.cmd.Wait()
	}
}

// watchRemovals starts `ip monitor address route` in the box (routes
// too: its marker is a route), and returns a check that fails the test if
// an address or a route was removed since, by what.
func (b *box) watchRemovals() (check func(by string)) {
	b.t.Helper()
	poke, token := nstest.IPMarker(b.t, b.ns)
	mon := nstest.NewMonitor(b.t, poke, token, "ip", "-n", b.ns, "monitor", "address", "route")
	mark := mon.Mark(b.t)
	return func(by string) {
		b.t.Helper()
		if got := mon.Since(b.t, mark); strings.Contains(got, "Deleted") {
			b.t.Errorf("%s removed an address or a route:\n%s", by, got)
		}
	}
}

// mustWait polls cond for up to 3 minutes, and fails the test if it never
// holds.
func mustWait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if !waitFor(3*time.Minute, cond) {
		t.Fatalf("timed out waiting for %s", what)
	}
}

// capture is dumpcap writing what crosses an interface of a namespace.
type capture struct {
	cmd  *exec.Cmd
	file string
	out  *nstest.SyncBuffer
}

// startCapture captures what filter (a capture filter) matches on dev in
// namespace ns, and returns once dumpcap captures.
func startCapture(t *testing.T, ns, dev, filter string) *capture {
	t.Helper()
	nstest.RequireBinary(t, "dumpcap")
	nstest.RequireBinary(t, "tshark")
	c := &capture{file: filepath.Join(t.TempDir(), dev+".pcapng"), out: &nstest.SyncBuffer{}}
	c.cmd = exec.Command("ip", "netns", "exec", ns, "dumpcap", "-q", "-i", dev, "-f", filter, "-w", c.file)
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.stop)
	mustWait(t, "dumpcap to capture", func() bool { return strings.Contains(c.out.String(), "Capturing on") })
	return c
}

func (c *capture) stop() {
	if c.cmd.ProcessState == nil {
		c.cmd.Process.Signal(syscall.SIGINT)
		c.cmd.Wait()
	}
}

// dhcpPacket is one DHCP message as tshark decodes it.
type dhcpPacket struct {
	ethDst, ipSrc, ipDst, ciaddr string
	typ                          string // option 53: 1 DISCOVER, 3 REQUEST, ...
	broadcast                    bool
	vendorClass, hostname        string
	options                      map[string]string // option number -> value, hex
	udpChecksum                  string            // 1 good, 0 bad, 2 unverified
}

// tshark runs tshark and returns its standard output; its complaints
// (running as root, a capture file cut short while dumpcap writes it) are
// not output.
func tshark(args ...string) string {
	out, _ := exec.Command("tshark", args...).Output()
	return string(out)
}

// malformed stops the capture and returns what tshark flags as malformed
// in it.
func (c *capture) malformed() string {
	c.stop()
	return strings.TrimSpace(tshark("-r", c.file, "-Y", "_ws.malformed"))
}

// packets has tshark decode every DHCP message captured so far.
func (c *capture) packets() []dhcpPacket {
	out := tshark("-r", c.file, "-o", "udp.check_checksum:TRUE", "-Y", "dhcp", "-T", "fields",
		"-E", "separator=|", "-E", "aggregator=,",
		"-e", "eth.dst", "-e", "ip.src", "-e", "ip.dst", "-e", "dhcp.ip.client", "-e", "dhcp.option.dhcp", "-e", "dhcp.flags.bc",
		"-e", "dhcp.option.vendor_class_id", "-e", "dhcp.option.hostname", "-e", "dhcp.option.type", "-e", "dhcp.option.value",
		"-e", "udp.checksum.status")
	var ps []dhcpPacket
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Split(line, "|")
		if len(f) != 11 {
			continue
		}
		p := dhcpPacket{ethDst: f[0], ipSrc: f[1], ipDst: f[2], ciaddr: f[3], typ: f[4], broadcast: f[5] == "1" || f[5] == "True",
			vendorClass: f[6], hostname: f[7], options: map[string]string{}, udpChecksum: f[10]}
		codes, values := strings.Split(f[8], ","), strings.Split(f[9], ",")
		// Option 255 (end) has a type and no value.
		for i, code := range codes {
			if i < len(values) && code != "255" {
				p.options[code] = values[i]
			}
		}
		ps = append(ps, p)
	}
	return ps
}

// The lab's ONT leases wan1 its address to a client whose vendor class
// begins with "neufbox": the address, connected and default routes in
// the uplink's table, the main table's default route by priority, the
// source rule, the MPTCP endpoint and NAT follow, as for a static uplink;
// the wire carries options 60, 61 and 12 exactly as configured; at T1 the
// client renews by a unicast REQUEST from its address, and the address
// is never removed across renewals.
func TestDHCPLeaseFromTheONT(t *testing.T) {
	l, b := dhcpLab(t, true)
	pcap := startCapture(t, l.NS(lab.RoleISP1), lab.ISPDownDev, "udp port 67 or udp port 68")
	mon := nstest.Watch(t, "ip", "-n", b.ns, "monitor", "address")
	spec := writeSpec(t, strings.Replace(dhcpSpec(t), "hostname: braid-lab", "hostname: braid-lab\n        clientID: \"00:62:72:61:69:64\"", 1))
	d := b.startDaemon("-f", spec)
	st := d.bound("10.101.0.2")
	e, _ := leaseIn(st)
	l4 := e.Fact.Lease4
	if l4.Address.String() != "10.101.0.2/24" || l4.Gateway.String() != "10.101.0.1" || l4.Server.String() != "10.101.0.1" ||
		!slices.Equal(l4.DNS, []netip.Addr{netip.MustParseAddr(lab.ResolverV4)}) || e.Expires.IsZero() || e.Process {
		t.Errorf("lease fact %+v (expires %v, process %v)", l4, e.Expires, e.Process)
	}
	if got := e.Expires.Sub(l4.Obtained); got != lab.ISP1LeaseTime {
		t.Errorf("the lease lasts %v, want the ONT's %v", got, lab.ISP1LeaseTime)
	}
	// braid's own name lookups go to the lease's resolver, by its uplink.
	st = d.until("the lease's resolver in use", func(st reconcile.Status) bool {
		return slices.Equal(st.Resolvers, []string{lab.ResolverV4 + ":53 (uplink isp1)"})
	})
	if c, _ := sessionIn(st, "session[dhcp4/isp1]"); !strings.HasPrefix(c.Detail, "bound 10.101.0.2/24 via 10.101.0.1 from server 10.101.0.1; renews at ") {
		t.Errorf("session detail %q", c.Detail)
	}
	// The same kernel objects as a static uplink's.
	for what, got := range map[string]string{
		"default route by priority": b.ip("-4", "route", "show", "default"),
		"uplink table":              b.ip("-4", "route", "show", "table", "7101"),
		"source rule":               b.ip("-4", "rule", "show", "pref", "7200"),
		"MPTCP endpoint":            b.ip("mptcp", "endpoint", "show"),
		"NAT":                       nstestNft(t, b.ns),
	} {
		want := map[string]string{
			"default route by priority": "default via 10.101.0.1 dev wan1 proto 98 metric 10",
			"uplink table":              "default via 10.101.0.1 dev wan1 proto 98",
			"source rule":               "from 10.101.0.2 lookup 7101",
			"MPTCP endpoint":            "10.101.0.2 id",
			"NAT":                       `oifname "wan1"`,
		}[what]
		if !strings.Contains(got, want) {
			t.Errorf("%s: want %q in\n%s", what, want, got)
		}
	}
	if seen, err := l.Whoami(t.Context(), lab.RoleBox, "tcp", "198.51.100.80:7", ""); err != nil || seen.Addr().String() != "10.101.0.2" {
		t.Errorf("the box reaches the server from %v (%v), want the leased address", seen, err)
	}
	// Status says what the lease is and when it renews.
	if r := b.braid(nil, "status"); !strings.Contains(r.stdout, "10.101.0.2/24 via 10.101.0.1 dns ["+lab.ResolverV4+"] from server 10.101.0.1, renew") {
		t.Errorf("braid status:\n%s", r.stdout)
	}
	// Two renewals at T1 (10 s each), as the capture shows them.
	isRenewal := func(p dhcpPacket) bool { return p.typ == "3" && p.ciaddr == "10.101.0.2" }
	var ps []dhcpPacket
	mustWait(t, "two renewals in the capture", func() bool {
		ps = pcap.packets()
		return len(slices.DeleteFunc(slices.Clone(ps), func(p dhcpPacket) bool { return !isRenewal(p) })) >= 2
	})
	if out := pcap.malformed(); out != "" {
		t.Errorf("tshark flags packets as malformed:\n%s", out)
	}
	var discovers, renewals int
	for _, p := range ps {
		if p.typ != "1" && p.typ != "3" {
			continue
		}
		if p.vendorClass != "neufbox_braid" || p.hostname != "braid-lab" || p.options["60"] != hex.EncodeToString([]byte("neufbox_braid")) ||
			p.options["61"] != "006272616964" || p.options["12"] != hex.EncodeToString([]byte("braid-lab")) {
			t.Errorf("a client message with options %v (vendor class %q, hostname %q)", p.options, p.vendorClass, p.hostname)
		}
		switch {
		case p.typ == "1":
			discovers++
			if p.ipSrc != "0.0.0.0" || p.ipDst != "255.255.255.255" || p.ethDst != "ff:ff:ff:ff:ff:ff" || !p.broadcast || p.udpChecksum != "1" {
				t.Errorf("DISCOVER %+v: want a broadcast from 0.0.0.0 with good checksums", p)
			}
		case isRenewal(p):
			renewals++
			if p.ipSrc != "10.101.0.2" || p.ipDst != "10.101.0.1" || p.ethDst == "ff:ff:ff:ff:ff:ff" || p.broadcast {
				t.Errorf("renewal %+v: want a unicast REQUEST from the leased address to the server", p)
			}
			if _, ok := p.options["50"]; ok {
				t.Errorf("renewal with a requested address: %v", p.options)
			}
		}
	}
	if discovers != 1 || renewals < 2 {
		t.Errorf("%d DISCOVERs and %d renewals in the capture, want 1 and at least 2:\n%+v", discovers, renewals, ps)
	}
	if strings.Contains(mon.String(), "Deleted") {
		t.Errorf("an address was removed across the renewals:\n%s", mon)
	}
}

// A client without the vendor class, or with one that only contains
// "neufbox", gets no offer, and status says why.
func TestDHCPNoOfferWithoutTheVendorClass(t *testing.T) {
	l, b := dhcpLab(t, true)
	for _, tc := range []struct{ vendorClass, hint string }{
		{"", "no offer in %s: the server may require a vendor class (option 60)"},
		{"xneufbox_braid", `no offer in %s: the server may not answer vendor class "xneufbox_braid" (option 60)`},
	} {
		spec := strings.Replace(dhcpSpec(t), "vendorClass: neufbox_braid", "vendorClass: "+tc.vendorClass, 1)
		if tc.vendorClass == "" {
			spec = strings.Replace(dhcpSpec(t), "        vendorClass: neufbox_braid   # option 60: the ONT wants \"neufbox...\"\n", "", 1)
		}
		d := b.startDaemon("-f", writeSpec(t, spec))
		st := d.until("the client to give up its first wait", func(st reconcile.Status) bool {
			c, _ := sessionIn(st, "session[dhcp4/isp1]")
			return c.State == session.Waiting && strings.Contains(c.Detail, "no offer in ")
		})
		c, _ := sessionIn(st, "session[dhcp4/isp1]")
		before, after, _ := strings.Cut(tc.hint, "%s")
		if !strings.HasPrefix(c.Detail, before) || !strings.Contains(c.Detail, after) {
			t.Errorf("vendor class %q: status %q, want %q", tc.vendorClass, c.Detail, tc.hint)
		}
		if _, ok := leaseIn(st); ok {
			t.Errorf("vendor class %q: a lease", tc.vendorClass)
		}
		if got := b.ip("-4", "addr", "show", "dev", "wan1"); strings.Contains(got, "inet ") {
			t.Errorf("vendor class %q: wan1 has an address:\n%s", tc.vendorClass, got)
		}
		d.stop(syscall.SIGTERM)
	}
	log := readFile(t, filepath.Join(l.Dir, "procs", lab.DHCP4Process+".log"))
	if strings.Contains(log, "DHCPOFFER") || !strings.Contains(log, "ignored") {
		t.Errorf("the ONT offered, or did not say it ignored the client:\n%s", log)
	}
}

// braid stopped (SIGTERM) or killed (kill -9) and started again keeps the
// address without a gap: the restarted client confirms the persisted
// lease (INIT-REBOOT, no DISCOVER) and sends no RELEASE; RELEASE goes
// only when the uplink's dhcp leaves the spec.
func TestDHCPRestartKeepsTheLease(t *testing.T) {
	l, b := dhcpLab(t, true)
	spec := writeSpec(t, dhcpSpec(t))
	d := b.startDaemon("-f", spec)
	d.bound("10.101.0.2")
	noRemovals := b.watchRemovals()
	dnsmasqLog := func() string { return readFile(t, filepath.Join(l.Dir, "procs", lab.DHCP4Process+".log")) }
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		d.stop(sig)
		if got := b.ip("-4", "addr", "show", "dev", "wan1"); !strings.Contains(got, "inet 10.101.0.2/24") {
			t.Fatalf("after %s, wan1 lost its address:\n%s", sig, got)
		}
		requests := strings.Count(dnsmasqLog(), "DHCPACK(")
		d = b.startDaemon("-f", spec)
		d.until("the restarted client confirms its lease", func(st reconcile.Status) bool {
			c, _ := sessionIn(st, "session[dhcp4/isp1]")
			return c.State == session.Running && strings.HasPrefix(c.Detail, "bound 10.101.0.2/24") && converged(st) &&
				strings.Count(dnsmasqLog(), "DHCPACK(") > requests
		})
	}
	noRemovals("restarts")
	log := dnsmasqLog()
	if n := strings.Count(log, "DHCPDISCOVER("); n != 1 {
		t.Errorf("%d DISCOVERs, want 1: the restarted clients should confirm their lease\n%s", n, log)
	}
	if strings.Contains(log, "DHCPRELEASE(") {
		t.Errorf("a RELEASE on a restart:\n%s", log)
	}
	// The uplink's dhcp leaves the spec: RELEASE, and the address goes.
	writeSpecTo(t, spec, strings.Replace(dhcpSpec(t),
		"      dhcp:\n        vendorClass: neufbox_braid   # option 60: the ONT wants \"neufbox...\"\n        hostname: braid-lab          # option 12\n",
		"      static: {address: 10.101.0.3/24, gateway: 10.101.0.1}\n", 1))
	d.until("the static address", func(st reconcile.Status) bool {
		_, ok := leaseIn(st)
		return !ok && converged(st) && strings.Contains(b.ip("-4", "addr", "show", "dev", "wan1"), "inet 10.101.0.3/24")
	})
	mustWait(t, "the RELEASE", func() bool { return strings.Contains(dnsmasqLog(), "DHCPRELEASE(down) 10.101.0.2") })
}

// The server says NAK to a renewal (its range changed): the lease ends at
// once, and the client gets a new one.
func TestDHCPNAK(t *testing.T) {
	t.Parallel()
	l, b := dhcpLab(t, false)
	srv := lab.ISP1DHCP4()
	srv.LeaseFile = filepath.Join(t.TempDir(), "leases")
	server := startDHCP(t, l, srv)
	d := b.startDaemon("-f", writeSpec(t, dhcpSpec(t)))
	d.bound("10.101.0.2")
	server.stop()
	srv.First, srv.Last = netip.MustParseAddr("10.101.0.50"), netip.MustParseAddr("10.101.0.50")
	server = startDHCP(t, l, srv)
	d.bound("10.101.0.50")
	if !strings.Contains(server.log.String(), "DHCPNAK(down) 10.101.0.2") {
		t.Errorf("no NAK for the old address:\n%s", server.log)
	}
	if got := b.ip("-4", "addr", "show", "dev", "wan1"); strings.Contains(got, "10.101.0.2/") {
		t.Errorf("the refused address stays:\n%s", got)
	}
}

// A server that stops answering: the client renews, rebinds, and at the
// lease's end the address and its routes go.
func TestDHCPExpiry(t *testing.T) {
	t.Parallel()
	l, b := dhcpLab(t, false)
	server := startDHCP(t, l, lab.ISP1DHCP4())
	d := b.startDaemon("-f", writeSpec(t, dhcpSpec(t)))
	st := d.bound("10.101.0.2")
	e, _ := leaseIn(st)
	server.stop()
	d.untilWithin("rebinding", e.Expires.Sub(e.Fact.Lease4.Obtained)+time.Minute, func(st reconcile.Status) bool {
		c, _ := sessionIn(st, "session[dhcp4/isp1]")
		return strings.HasPrefix(c.Detail, "rebinding 10.101.0.2/24")
	})
	st = d.untilWithin("the expiry", e.Expires.Sub(e.Fact.Lease4.Obtained)+time.Minute, func(st reconcile.Status) bool {
		_, ok := leaseIn(st)
		return !ok && converged(st) && !strings.Contains(b.ip("-4", "addr", "show", "dev", "wan1"), "10.101.0.2")
	})
	if c, _ := sessionIn(st, "session[dhcp4/isp1]"); c.State != session.Waiting || !strings.Contains(c.Detail, "the lease of 10.101.0.2/24 from 10.101.0.1 expired") {
		t.Errorf("session after the expiry: %s %q", c.State, c.Detail)
	}
	if got := b.ip("-4", "route", "show", "default"); strings.Contains(got, "10.101.0.1") {
		t.Errorf("the expired lease's default route stays:\n%s", got)
	}
}

// An acknowledged address that another host answers for is declined
// (DECLINE), and the client takes another.
func TestDHCPDecline(t *testing.T) {
	t.Parallel()
	l, b := dhcpLab(t, false)
	// isp1 itself holds 10.101.0.77, and its kernel answers ARP for it.
	nstest.Run(t, "ip", "-n", l.NS(lab.RoleISP1), "addr", "add", "10.101.0.77/32", "dev", lab.ISPDownDev)
	mac := strings.Fields(b.ip("-br", "link", "show", "dev", "wan1"))[2]
	srv := lab.ISP1DHCP4()
	srv.Hosts = []string{mac + ",10.101.0.77"}
	server := startDHCP(t, l, srv)
	d := b.startDaemon("-f", writeSpec(t, dhcpSpec(t)))
	d.bound("10.101.0.2")
	if log := server.log.String(); !strings.Contains(log, "DHCPDECLINE(down) 10.101.0.77") {
		t.Errorf("no DECLINE of the address in use:\n%s", log)
	}
	if got := b.ip("-4", "addr", "show", "dev", "wan1"); strings.Contains(got, "10.101.0.77") {
		t.Errorf("the box took the address in use:\n%s", got)
	}
}
