package lab_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/braid-router/braid/internal/netns"
	"github.com/braid-router/braid/lab"
	"github.com/braid-router/braid/lab/labtest"
)

// configureWAN gives the box's end of an uplink its address in both
// families, by hand (braid's job elsewhere), and a default route out of
// it, so that packets cross the ISP's link.
func configureWAN(t *testing.T, l *lab.Lab, u lab.Uplink) {
	t.Helper()
	for _, args := range [][]string{
		{"link", "set", "dev", u.Interface, "up"},
		{"addr", "replace", u.Addr4.String(), "dev", u.Interface},
		{"addr", "replace", u.Addr6.String(), "dev", u.Interface, "nodad"},
		{"route", "replace", "default", "via", u.Gateway4.String()},
		{"-6", "route", "replace", "default", "via", u.Gateway6.String()},
	} {
		run(t, l, lab.RoleBox, "ip", args...)
	}
}

func uplink(t *testing.T, name string) lab.Uplink {
	for _, u := range lab.Uplinks() {
		if u.Name == name {
			return u
		}
	}
	t.Fatalf("no uplink %s", name)
	return lab.Uplink{}
}

// pingLoss pings dst from role count times and returns the share of the
// echoes that got no reply, and ping's output.
func pingLoss(t *testing.T, l *lab.Lab, role lab.Role, dst string, count int) (float64, string) {
	t.Helper()
	// ping exits 1 when a reply is missing: its summary is what counts.
	out, _ := l.Command(ctx(t), role, "ping", "-n", "-q", "-c", strconv.Itoa(count), "-i", "0.002", "-W", "2", dst).CombinedOutput()
	m := regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("ping %s: no summary:\n%s", dst, out)
	}
	sent, _ := strconv.Atoi(string(m[1]))
	got, _ := strconv.Atoi(string(m[2]))
	if sent != count {
		t.Fatalf("ping %s sent %d of %d echoes:\n%s", dst, sent, count, out)
	}
	return 1 - float64(got)/float64(sent), string(out)
}

// counters is a test's nftables table in an ISP's namespace: UDP to port
// 9 from the box, counted before any fault's rules see it ("in") and
// after them ("kept").
const counters = `table inet labtest {
	chain before { type filter hook prerouting priority -400; iifname "down" udp dport 9 counter comment "in"; }
	chain after { type filter hook prerouting priority -200; iifname "down" udp dport 9 counter comment "kept"; }
}
`

// count reads the counters of the labtest table in role.
func count(t *testing.T, l *lab.Lab, role lab.Role) (in, kept int) {
	t.Helper()
	out := run(t, l, role, "nft", "list", "table", "inet", "labtest")
	for _, m := range regexp.MustCompile(`counter packets (\d+) bytes \d+ comment "(\w+)"`).FindAllStringSubmatch(out, -1) {
		n, _ := strconv.Atoi(m[1])
		switch m[2] {
		case "in":
			in = n
		case "kept":
			kept = n
		}
	}
	return in, kept
}

// sendUDP sends n datagrams from the box to addr:9, on an unconnected
// socket (the ISP's port unreachable answers are never reported back).
func sendUDP(t *testing.T, l *lab.Lab, addr string, n int) {
	t.Helper()
	to := &net.UDPAddr{IP: net.ParseIP(addr), Port: 9}
	err := l.Do(lab.RoleBox, func() error {
		c, err := net.ListenPacket("udp", ":0")
		if err != nil {
			return err
		}
		defer c.Close()
		for i := range n {
			if _, err := c.WriteTo([]byte("datagram "+strconv.Itoa(i)), to); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// faultsIn returns the faults `lab status` reports for l.
func faultsIn(t *testing.T, l *lab.Lab) string {
	t.Helper()
	st, err := l.Status(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range st.Faults {
		out = append(out, f.String())
	}
	return strings.Join(out, ", ")
}

// inject injects f twice (the second changes nothing) and checks status.
func inject(t *testing.T, l *lab.Lab, f lab.Fault) {
	t.Helper()
	for range 2 {
		if err := l.Inject(ctx(t), f); err != nil {
			t.Fatal(err)
		}
	}
	if got := faultsIn(t, l); got != f.String() {
		t.Fatalf("status shows faults %q, want %q", got, f)
	}
}

// clearFault clears isp's fault twice (the second is a no-op) and checks
// status.
func clearFault(t *testing.T, l *lab.Lab, isp lab.Role) {
	t.Helper()
	for range 2 {
		if err := l.Clear(ctx(t), isp); err != nil {
			t.Fatal(err)
		}
	}
	if got := faultsIn(t, l); got != "" {
		t.Fatalf("status shows faults %q after clear", got)
	}
}

// A blackhole drops every packet both ways without a word, and leaves the
// link layer alone; loss drops about the percentage asked, each way;
// clear undoes both.
func TestFaultBlackholeAndLoss(t *testing.T) {
	l := labtest.New(t)
	u := uplink(t, "isp2")
	configureWAN(t, l, u)
	ping(t, l, lab.RoleBox, u.Gateway4.String())
	ping(t, l, lab.RoleBox, lab.ServerV6)
	nft := l.Command(ctx(t), u.ISP, "nft", "-f", "-")
	nft.Stdin = strings.NewReader(counters)
	if out, err := nft.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v %s", err, out)
	}

	inject(t, l, lab.Fault{ISP: u.ISP, Kind: lab.FaultBlackhole})
	// Neighbours are learnt again through the blackhole.
	run(t, l, lab.RoleBox, "ip", "neigh", "flush", "dev", u.Interface)
	sendUDP(t, l, u.Gateway4.String(), 50)
	if in, kept := count(t, l, u.ISP); in == 0 || kept != 0 {
		t.Errorf("blackhole: %d datagrams arrived, %d got past it; want some, none", in, kept)
	}
	for _, dst := range []string{u.Gateway4.String(), lab.ServerV4, u.Gateway6.String(), lab.ServerV6} {
		loss, out := pingLoss(t, l, lab.RoleBox, dst, 5)
		if loss != 1 || strings.Contains(out, "nreachable") || strings.Contains(out, "error") {
			t.Errorf("blackhole: ping %s lost %.0f%%, want all, silently:\n%s", dst, 100*loss, out)
		}
	}
	// From the Internet to the box too.
	if loss, out := pingLoss(t, l, lab.RoleInet, u.Addr4.Addr().String(), 5); loss != 1 {
		t.Errorf("blackhole: the box answered from the Internet:\n%s", out)
	}
	// The ISP's end still answers ARP and neighbour discovery.
	for _, gw := range []string{u.Gateway4.String(), u.Gateway6.String()} {
		if out := run(t, l, lab.RoleBox, "ip", "neigh", "show", gw, "dev", u.Interface); !regexp.MustCompile(`lladdr \S+ (router )?(REACHABLE|STALE|DELAY|PROBE)`).MatchString(out) {
			t.Errorf("blackhole: no neighbour entry for %s: %q", gw, out)
		}
	}

	// 30% each way: about 30% of the datagrams, and 1-0.7² = 51% of the
	// echoes' round trips. The bands are many standard deviations wide.
	inject(t, l, lab.Fault{ISP: u.ISP, Kind: lab.FaultLoss, Loss: 30})
	in0, kept0 := count(t, l, u.ISP)
	sendUDP(t, l, u.Gateway4.String(), 2000)
	in, kept := count(t, l, u.ISP)
	in, kept = in-in0, kept-kept0
	if in < 500 {
		t.Fatalf("loss: only %d of 2000 datagrams reached the ISP's rules", in)
	}
	if dropped := 1 - float64(kept)/float64(in); dropped < 0.22 || dropped > 0.38 {
		t.Errorf("loss 30%%: %.1f%% of %d datagrams dropped", 100*dropped, in)
	}
	if loss, out := pingLoss(t, l, lab.RoleBox, u.Gateway4.String(), 1000); loss < 0.41 || loss > 0.61 {
		t.Errorf("loss 30%%: %.1f%% of the round trips lost, want about 51%%:\n%s", 100*loss, out)
	}
	// A new percentage replaces the old one.
	inject(t, l, lab.Fault{ISP: u.ISP, Kind: lab.FaultLoss, Loss: 100})
	if loss, _ := pingLoss(t, l, lab.RoleBox, u.Gateway4.String(), 5); loss != 1 {
		t.Errorf("loss 100%%: %.0f%% lost", 100*loss)
	}
	if err := l.Inject(ctx(t), lab.Fault{ISP: u.ISP, Kind: lab.FaultLoss, Loss: 101}); err == nil {
		t.Error("loss 101% was accepted")
	}
	clearFault(t, l, u.ISP)
	ping(t, l, lab.RoleBox, u.Gateway4.String())
	ping(t, l, lab.RoleBox, lab.ServerV6)
}

// linkJSON is what `ip -json link show DEV` says of a link.
type linkJSON struct {
	Flags   []string `json:"flags"`
	Address string   `json:"address"`
}

// linkOf returns what the box's namespace has of dev, and whether it
// has it.
func linkOf(t *testing.T, l *lab.Lab, role lab.Role, dev string) (linkJSON, bool) {
	t.Helper()
	out, err := exec.Command("ip", "-n", l.NS(role), "-json", "link", "show", "dev", dev).Output()
	if err != nil {
		return linkJSON{}, false
	}
	var links []linkJSON
	if err := json.Unmarshal(out, &links); err != nil || len(links) != 1 {
		t.Fatalf("ip -json link show dev %s: %v %s", dev, err, out)
	}
	return links[0], true
}

func hasFlag(l linkJSON, flag string) bool {
	for _, f := range l.Flags {
		if f == flag {
			return true
		}
	}
	return false
}

// down takes the ISP's end down, so the box's end loses its carrier;
// clear brings it back with its addresses and routes. unplug removes the
// box's link; plug puts it back under its name and MAC address, the
// box's end down and unaddressed, the ISP's end configured as at lab up
// (addresses, the route to the LAN's prefix through the box, the rate
// limit).
func TestFaultDownUnplugPlug(t *testing.T) {
	l := labtest.New(t)
	u := uplink(t, "isp1")
	configureWAN(t, l, u)
	ping(t, l, lab.RoleBox, u.Gateway6.String())

	inject(t, l, lab.Fault{ISP: u.ISP, Kind: lab.FaultDown})
	if k, _ := linkOf(t, l, lab.RoleBox, u.Interface); !hasFlag(k, "NO-CARRIER") || hasFlag(k, "LOWER_UP") {
		t.Errorf("down: the box's %s has flags %v, want NO-CARRIER", u.Interface, k.Flags)
	}
	if loss, out := pingLoss(t, l, lab.RoleBox, u.Gateway4.String(), 3); loss != 1 {
		t.Errorf("down: the ISP answered:\n%s", out)
	}
	clearFault(t, l, u.ISP)
	if k, _ := linkOf(t, l, lab.RoleBox, u.Interface); !hasFlag(k, "LOWER_UP") {
		t.Errorf("after clear: the box's %s has flags %v, want a carrier", u.Interface, k.Flags)
	}
	ping(t, l, lab.RoleBox, u.Gateway6.String())
	wantISPSide(t, l, u)

	before, _ := linkOf(t, l, lab.RoleBox, u.Interface)
	inject(t, l, lab.Fault{ISP: u.ISP, Kind: lab.FaultUnplug})
	if _, ok := linkOf(t, l, lab.RoleBox, u.Interface); ok {
		t.Fatalf("unplug: the box still has %s", u.Interface)
	}
	if _, ok := linkOf(t, l, u.ISP, lab.ISPDownDev); ok {
		t.Fatalf("unplug: the ISP still has its end")
	}
	for range 2 {
		if err := l.Plug(ctx(t), u.ISP); err != nil {
			t.Fatal(err)
		}
	}
	if got := faultsIn(t, l); got != "" {
		t.Errorf("status shows faults %q after plug", got)
	}
	after, ok := linkOf(t, l, lab.RoleBox, u.Interface)
	if !ok || after.Address != before.Address || hasFlag(after, "UP") {
		t.Errorf("plugged %s: %+v (present %v), want it down with MAC %s", u.Interface, after, ok, before.Address)
	}
	if out := run(t, l, lab.RoleBox, "ip", "addr", "show", "dev", u.Interface); strings.Contains(out, "inet") {
		t.Errorf("plugged %s has addresses:\n%s", u.Interface, out)
	}
	wantISPSide(t, l, u)
	configureWAN(t, l, u)
	ping(t, l, lab.RoleBox, u.Gateway4.String())
	ping(t, l, lab.RoleBox, lab.ServerV6)

	// Clear plugs back an unplugged link, and a new fault replaces it.
	inject(t, l, lab.Fault{ISP: u.ISP, Kind: lab.FaultUnplug})
	inject(t, l, lab.Fault{ISP: u.ISP, Kind: lab.FaultBlackhole})
	if _, ok := linkOf(t, l, lab.RoleBox, u.Interface); !ok {
		t.Error("a blackhole after unplug left the link unplugged")
	}
	inject(t, l, lab.Fault{ISP: u.ISP, Kind: lab.FaultUnplug})
	clearFault(t, l, u.ISP)
	if after, ok := linkOf(t, l, lab.RoleBox, u.Interface); !ok || after.Address != before.Address {
		t.Errorf("after clear: %s %+v (present %v)", u.Interface, after, ok)
	}
	if err := l.Inject(ctx(t), lab.Fault{ISP: lab.RoleInet, Kind: lab.FaultDown}); err == nil {
		t.Error("a fault on the core, which has no link to the box, was accepted")
	}

	// lab down removes a lab with faults, an unplugged link included.
	inject(t, l, lab.Fault{ISP: u.ISP, Kind: lab.FaultUnplug})
	if err := l.Inject(ctx(t), lab.Fault{ISP: lab.RoleISP2, Kind: lab.FaultLoss, Loss: 5}); err != nil {
		t.Fatal(err)
	}
	if err := l.Down(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := lab.Open(l.Name); !errors.Is(err, lab.ErrNotExist) {
		t.Errorf("after down, Open = %v", err)
	}
	for _, r := range lab.Roles() {
		if netns.Exists(l.NS(r)) {
			t.Errorf("after down, namespace %s remains", l.NS(r))
		}
	}
}

// wantISPSide checks that the ISP's end of u's link is configured as at
// lab up.
func wantISPSide(t *testing.T, l *lab.Lab, u lab.Uplink) {
	t.Helper()
	addrs := run(t, l, u.ISP, "ip", "addr", "show", "dev", lab.ISPDownDev)
	for _, a := range []string{u.Gateway4.String() + "/24", u.Gateway6.String() + "/64"} {
		if !strings.Contains(addrs, a) {
			t.Errorf("the ISP's end lacks %s:\n%s", a, addrs)
		}
	}
	if got := run(t, l, u.ISP, "ip", "-6", "route", "show", lab.LANPrefixV6); !strings.Contains(got, "via "+lab.BoxWAN1V6) {
		t.Errorf("the ISP has no route to the LAN's prefix through the box: %q", got)
	}
	if got := run(t, l, u.ISP, "tc", "qdisc", "show", "dev", lab.ISPDownDev); !strings.Contains(got, "tbf") || !strings.Contains(got, fmt.Sprint(u.Rate/1_000_000)+"Mbit") {
		t.Errorf("the ISP's end has no rate limit: %q", got)
	}
}

// strip-mptcp scrubs the MPTCP option from the SYNs crossing the link: a
// Multipath TCP connection from the box through the ISP to a Multipath
// TCP server in the Internet falls back to plain TCP at both ends, and
// is Multipath TCP again once the fault is cleared; plain TCP passes
// throughout.
func TestFaultStripMPTCP(t *testing.T) {
	l := labtest.New(t)
	u := uplink(t, "isp2")
	configureWAN(t, l, u)
	var ln net.Listener
	if err := l.Do(lab.RoleInet, func() (err error) {
		lc := net.ListenConfig{}
		lc.SetMultipathTCP(true)
		ln, err = lc.Listen(ctx(t), "tcp", net.JoinHostPort(lab.ServerV4, "7300"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// mptcp connects from the box and says whether each end is still
	// Multipath TCP.
	mptcp := func() (client, server bool) {
		t.Helper()
		var c net.Conn
		if err := l.Do(lab.RoleBox, func() (err error) {
			d := net.Dialer{Timeout: 10 * time.Second}
			d.SetMultipathTCP(true)
			c, err = d.Dial("tcp", ln.Addr().String())
			return err
		}); err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		client, _ = c.(*net.TCPConn).MultipathTCP()
		server, _ = s.(*net.TCPConn).MultipathTCP()
		return client, server
	}
	if c, s := mptcp(); !c || !s {
		t.Fatalf("without a fault: MPTCP at the box %v, at the server %v; want both", c, s)
	}
	inject(t, l, lab.Fault{ISP: u.ISP, Kind: lab.FaultStripMPTCP})
	if c, s := mptcp(); c || s {
		t.Errorf("strip-mptcp: MPTCP at the box %v, at the server %v; want neither", c, s)
	}
	clearFault(t, l, u.ISP)
	if c, s := mptcp(); !c || !s {
		t.Errorf("cleared: MPTCP at the box %v, at the server %v; want both", c, s)
	}
}
