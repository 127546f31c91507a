package lab_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/braid-router/braid/internal/netns"
	"github.com/braid-router/braid/internal/nstest"
	"github.com/braid-router/braid/internal/rundir"
	"github.com/braid-router/braid/lab"
	"github.com/braid-router/braid/lab/labtest"
)

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func run(t *testing.T, l *lab.Lab, role lab.Role, name string, args ...string) string {
	t.Helper()
	out, err := l.Run(ctx(t), role, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func ping(t *testing.T, l *lab.Lab, role lab.Role, dst string) {
	t.Helper()
	run(t, l, role, "ping", "-n", "-q", "-c", "1", "-W", "2", dst)
}

// whoami asks server:port from role and returns the address it saw.
func whoami(t *testing.T, l *lab.Lab, role lab.Role, network, server string, port uint16, bind string) netip.Addr {
	t.Helper()
	ap := netip.AddrPortFrom(netip.MustParseAddr(server), port).String()
	seen, err := l.Whoami(ctx(t), role, network, ap, bind)
	if err != nil {
		t.Fatal(err)
	}
	return seen.Addr()
}

func TestUpBoxUnconfigured(t *testing.T) {
	l := labtest.New(t)
	st, err := l.Status(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	var box *lab.NamespaceStatus
	for i, ns := range st.Namespaces {
		if !ns.Exists {
			t.Errorf("namespace %s does not exist", ns.Name)
		}
		if ns.Role == lab.RoleBox {
			box = &st.Namespaces[i]
		}
	}
	if box == nil || box.Name != l.NS(lab.RoleBox) || box.Name != l.Name+"-box" {
		t.Fatalf("no box namespace %q in %+v", l.NS(lab.RoleBox), st.Namespaces)
	}
	got := map[string]lab.LinkStatus{}
	for _, ls := range box.Links {
		got[ls.Name] = ls
	}
	if len(got) != 4 {
		t.Errorf("box has links %v, want lo, lan0, wan1, wan2", box.Links)
	}
	if lo := got["lo"]; !lo.Up {
		t.Errorf("box lo is down: %+v", lo)
	}
	for _, dev := range []string{lab.BoxLANDev, lab.BoxWAN1Dev, lab.BoxWAN2Dev} {
		ls, ok := got[dev]
		if !ok {
			t.Errorf("box has no %s", dev)
			continue
		}
		if ls.Up || len(ls.Addrs) > 0 {
			t.Errorf("box %s should be down and unaddressed: %+v", dev, ls)
		}
	}
	// Nothing but the loopback's own routes.
	for _, family := range []string{"-4", "-6"} {
		if out := strings.TrimSpace(run(t, l, lab.RoleBox, "ip", family, "route", "show", "table", "all", "type", "unicast")); out != "" {
			t.Errorf("box has %s routes:\n%s", family, out)
		}
	}
	for _, p := range st.Processes {
		if !p.Alive {
			t.Errorf("process %s (pid %d) is not alive", p.Name, p.PID)
		}
	}
	var names []string
	for _, p := range st.Processes {
		names = append(names, p.Name)
	}
	slices.Sort(names)
	// The peer's key: random, for root only.
	if fi, err := os.Stat(l.PeerKeyPath()); err != nil || fi.Mode().Perm() != 0o600 || fi.Size() < 32 {
		t.Errorf("the peer's key %s: %v, %v", l.PeerKeyPath(), fi, err)
	}
	// A test binary is not braid: its labs have no braid peer (see
	// TestLabUpRunsThePeer in cmd/braid for one that has).
	if want := []string{lab.IperfProcess, lab.DHCP4Process, lab.DHCP6Process, "peer-whoami", lab.ISP2AdvertsProcess, lab.ResolverProcess, "whoami"}; !slices.Equal(names, want) {
		t.Errorf("processes %q, want %q", names, want)
	}
}

// isp2 advertises its prefix and a resolver, unmodified radvd; the box's
// kernel makes nothing of the adverts (accept_ra is off): neither an
// address nor a route. A reload changes the adverts at once.
func TestISP2Advertises(t *testing.T) {
	nstest.RequireBinary(t, "tshark")
	l := labtest.New(t)
	if got := strings.TrimSpace(run(t, l, lab.RoleBox, "sysctl", "-n", "net.ipv6.conf."+lab.BoxWAN2Dev+".accept_ra")); got != "0" {
		t.Fatalf("the box's wan2 accept_ra = %s, want 0", got)
	}
	run(t, l, lab.RoleBox, "ip", "link", "set", "dev", lab.BoxWAN2Dev, "up")
	out := &nstest.SyncBuffer{}
	cmd := l.Command(context.Background(), lab.RoleBox, "tshark", "-n", "-i", lab.BoxWAN2Dev, "-f", "icmp6", "-c", "1",
		"-Y", "icmpv6.type == 134 && icmpv6.nd.ra.router_lifetime == 0", "-T", "fields", "-E", "separator=|",
		"-e", "icmpv6.opt.prefix", "-e", "icmpv6.opt.prefix.flag.a", "-e", "icmpv6.opt.prefix.valid_lifetime", "-e", "icmpv6.opt.rdnss")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(out.String(), "Capturing on") {
		if time.Now().After(deadline) {
			t.Fatalf("tshark did not start: %s", out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// An advert with a router lifetime of zero comes only after a reload,
	// which radvd follows with an advert at once. tshark may say it
	// captures a moment before it does: reload until it has one.
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		if err := l.Reload(lab.ISP2AdvertsProcess, lab.ISP2Adverts(0)); err != nil {
			t.Fatal(err)
		}
		select {
		case <-done:
		case <-tick.C:
			if time.Now().After(deadline) {
				t.Fatalf("no advert after the reload:\n%s", out)
			}
			continue
		}
		break
	}
	want := strings.Join([]string{"2001:db8:102::", "1", strconv.Itoa(lab.ISP2ValidLifetime), lab.ISP2ResolverV6}, "|")
	if !strings.Contains(out.String(), want+"\n") {
		t.Errorf("advert (prefix|A flag|valid lifetime|RDNSS):\n%s\nwant %s", out, want)
	}
	if got := run(t, l, lab.RoleBox, "ip", "-6", "addr", "show", "dev", lab.BoxWAN2Dev, "scope", "global"); strings.TrimSpace(got) != "" {
		t.Errorf("the box's kernel formed an address from the adverts:\n%s", got)
	}
	if got := run(t, l, lab.RoleBox, "ip", "-6", "route", "show", "table", "all", "proto", "ra"); strings.TrimSpace(got) != "" {
		t.Errorf("the box's kernel took routes from the adverts:\n%s", got)
	}
	if err := l.Reload("nope", ""); err == nil {
		t.Error("reloading a process the lab has not started succeeded")
	}
}

func TestReachability(t *testing.T) {
	l := labtest.New(t)
	for _, c := range []struct {
		from lab.Role
		to   []string
	}{
		{lab.RoleISP1, []string{lab.ServerV4, lab.ServerV6, lab.SteeredServerV4, lab.SteeredServerV6, lab.PeerV4, lab.PeerV6}},
		{lab.RoleISP2, []string{lab.ServerV4, lab.ServerV6, lab.SteeredServerV4, lab.SteeredServerV6, lab.PeerV4, lab.PeerV6}},
		{lab.RoleInet, []string{lab.PeerV4, lab.PeerV6, lab.ISP1UpV4, lab.ISP1UpV6, lab.ISP2UpV4, lab.ISP2UpV6}},
		{lab.RolePeer, []string{lab.ServerV4, lab.ServerV6, lab.ISP1GatewayV4, lab.ISP2GatewayV6}},
	} {
		for _, dst := range c.to {
			t.Run(string(c.from)+"-to-"+dst, func(t *testing.T) { ping(t, l, c.from, dst) })
		}
	}
	// Neither ISP routes the LAN's IPv4 prefix, and nothing reaches the
	// unconfigured box.
	for _, role := range []lab.Role{lab.RoleISP1, lab.RoleISP2, lab.RoleInet} {
		out, err := l.Run(ctx(t), role, "ip", "-4", "route", "get", lab.LANClientV4)
		if err == nil && (strings.Contains(out, " dev "+lab.ISPDownDev) || strings.Contains(out, " via 10.10")) {
			t.Errorf("%s routes the LAN's IPv4 prefix toward the box: %s", role, out)
		}
	}
	if out := run(t, l, lab.RoleISP1, "ip", "-6", "route", "get", lab.LANClientV6); !strings.Contains(out, "via "+lab.BoxWAN1V6) {
		t.Errorf("isp1 does not route the LAN's IPv6 prefix to the box: %s", out)
	}
}

func TestWhoami(t *testing.T) {
	l := labtest.New(t)
	for _, c := range []struct {
		from   lab.Role
		server string
		port   uint16
		want   string
	}{
		{lab.RoleISP1, lab.ServerV4, lab.WhoamiPort, lab.ISP1UpV4},
		{lab.RoleISP1, lab.SteeredServerV6, lab.WhoamiPort, lab.ISP1UpV6},
		{lab.RoleISP2, lab.SteeredServerV4, lab.WhoamiPort, lab.ISP2UpV4},
		{lab.RoleISP2, lab.ServerV6, lab.WhoamiPort, lab.ISP2UpV6},
		{lab.RolePeer, lab.ServerV4, lab.WhoamiPort, lab.PeerV4},
		{lab.RoleInet, lab.PeerV4, lab.WhoamiPort, lab.InetPeerV4},
		{lab.RoleInet, lab.PeerV6, lab.WhoamiPort, lab.InetPeerV6},
	} {
		for _, network := range []string{"tcp", "udp"} {
			t.Run(network+"-"+string(c.from)+"-to-"+c.server, func(t *testing.T) {
				if got := whoami(t, l, c.from, network, c.server, c.port, ""); got.String() != c.want {
					t.Errorf("whoami saw %s, want %s", got, c.want)
				}
			})
		}
	}
	// The core's download service, both families, and iperf3's server.
	for _, c := range []struct {
		from   lab.Role
		server string
	}{{lab.RoleISP1, lab.ServerV4}, {lab.RoleISP2, lab.ServerV6}, {lab.RolePeer, lab.SteeredServerV4}} {
		t.Run("download-"+string(c.from)+"-from-"+c.server, func(t *testing.T) {
			const size = 1 << 20
			server := netip.AddrPortFrom(netip.MustParseAddr(c.server), lab.DownloadPort).String()
			if n, err := l.Download(ctx(t), c.from, "tcp", server, "", size, nil); err != nil || n != size {
				t.Errorf("download: %d bytes, %v", n, err)
			}
		})
	}
	for _, server := range []string{lab.ServerV4, lab.ServerV6} {
		t.Run("iperf3-"+server, func(t *testing.T) {
			// iperf3's server runs one test at a time and takes a moment
			// to be ready for the next after the one before (the other
			// family's): a client that comes too early is turned away
			// ("busy") or reset. It tries again until the deadline.
			var out string
			var err error
			for deadline := time.Now().Add(30 * time.Second); ; {
				out, err = l.Run(ctx(t), lab.RolePeer, "iperf3", "--client", server, "--port", strconv.Itoa(lab.IperfPort), "--bytes", "1M", "--json")
				if err == nil || time.Now().After(deadline) {
					break
				}
				t.Logf("iperf3 to %s: %v; again", server, err)
				time.Sleep(500 * time.Millisecond)
			}
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			// The client's report: what it sent, and what the server
			// said it received (the client may stop first: less).
			type sum struct {
				Bytes int64 `json:"bytes"`
			}
			var res struct {
				End struct {
					Sent     sum `json:"sum_sent"`
					Received sum `json:"sum_received"`
				} `json:"end"`
			}
			if err := json.Unmarshal([]byte(out), &res); err != nil || res.End.Sent.Bytes < 1<<20 || res.End.Received.Bytes == 0 {
				t.Errorf("iperf3 to %s: sent %d bytes, the server received %d (%v)\n%s", server, res.End.Sent.Bytes, res.End.Received.Bytes, err, out)
			}
		})
	}
}

// The rates the README promises: 50 Mbit/s through isp1, 10 through isp2
// (written out, not taken from the code under test).
func TestRateLimits(t *testing.T) {
	l := labtest.New(t)
	for _, c := range []struct {
		role lab.Role
		rate uint64
	}{{lab.RoleISP1, 50_000_000}, {lab.RoleISP2, 10_000_000}} {
		var qdiscs []struct {
			Kind    string `json:"kind"`
			Dev     string `json:"dev"`
			Root    bool   `json:"root"`
			Options struct {
				Rate uint64 `json:"rate"` // bytes/s
			} `json:"options"`
		}
		if err := json.Unmarshal([]byte(run(t, l, c.role, "tc", "-j", "qdisc", "show")), &qdiscs); err != nil {
			t.Fatal(err)
		}
		limited := map[string]bool{}
		for _, q := range qdiscs {
			if q.Kind == "tbf" && q.Root {
				if q.Options.Rate*8 != c.rate {
					t.Errorf("%s %s: tbf rate %d bit/s, want %d", c.role, q.Dev, q.Options.Rate*8, c.rate)
				}
				limited[q.Dev] = true
			}
		}
		if !limited[lab.ISPDownDev] || !limited[lab.ISPUpDev] {
			t.Errorf("%s: tbf on %v, want on %s and %s: %+v", c.role, limited, lab.ISPDownDev, lab.ISPUpDev, qdiscs)
		}
	}
}

func TestDownRemovesEverything(t *testing.T) {
	nstest.RequireRoot(t)
	cfg := labtest.Config(t)
	c := ctx(t)
	l, err := lab.Up(c, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lab.Down(context.Background(), cfg.Name) })
	st, err := l.Status(c)
	if err != nil {
		t.Fatal(err)
	}
	// braid's state for the box (say, after an apply) goes with the box.
	box := rundir.For(l.NS(lab.RoleBox))
	for _, f := range []string{filepath.Join(box.Run, "lock"), filepath.Join(box.State, "owned.json")} {
		if err := os.MkdirAll(filepath.Dir(f), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte("{}\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// A stray process in a namespace (a test's server, a shell) goes too.
	stray := l.Command(context.Background(), lab.RoleISP2, "sleep", "600")
	if err := stray.Start(); err != nil {
		t.Fatal(err)
	}
	go stray.Wait()

	if names, _ := lab.List(); !contains(names, cfg.Name) {
		t.Errorf("List() = %v, want it to hold %s", names, cfg.Name)
	}
	if err := l.Down(c); err != nil {
		t.Fatal(err)
	}
	for _, ns := range st.Namespaces {
		if netns.Exists(ns.Name) {
			t.Errorf("namespace %s remains", ns.Name)
		}
	}
	pids := []int{stray.Process.Pid}
	for _, p := range st.Processes {
		pids = append(pids, p.PID)
	}
	for _, pid := range pids {
		if b, err := os.ReadFile(filepath.Join("/proc", itoa(pid), "stat")); err == nil && !strings.Contains(string(b), ") Z ") {
			t.Errorf("process %d remains: %s", pid, b)
		}
	}
	if _, err := os.Stat(l.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("run directory %s remains (%v)", l.Dir, err)
	}
	for _, dir := range []string{box.Run, box.State} {
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("braid's directory %s remains (%v)", dir, err)
		}
	}
	if names, _ := lab.List(); contains(names, cfg.Name) {
		t.Errorf("List() = %v after Down", names)
	}
	if _, err := lab.Open(cfg.Name); !errors.Is(err, lab.ErrNotExist) {
		t.Errorf("Open after Down: %v, want ErrNotExist", err)
	}
	// Down again, and Down of a lab that never was: not errors.
	if err := l.Down(c); err != nil {
		t.Errorf("second Down: %v", err)
	}
	if err := lab.Down(c, nstest.Name("lt")); err != nil {
		t.Errorf("Down of a lab that never existed: %v", err)
	}
}

func TestUpRefusesExisting(t *testing.T) {
	cfg := labtest.Config(t)
	l := labtest.Up(t, cfg)
	_, err := lab.Up(ctx(t), cfg)
	if !errors.Is(err, lab.ErrExists) || !strings.Contains(err.Error(), "braid lab down --name "+cfg.Name) {
		t.Fatalf("second Up: %v, want ErrExists suggesting braid lab down", err)
	}
	// The first lab is intact.
	if got := whoami(t, l, lab.RoleISP1, "tcp", lab.ServerV4, lab.WhoamiPort, ""); got.String() != lab.ISP1UpV4 {
		t.Errorf("whoami after refused Up saw %s", got)
	}
	if _, err := lab.Open(cfg.Name); err != nil {
		t.Error(err)
	}

	// A namespace left over without a run directory also blocks Up.
	name := nstest.Name("lt")
	nstest.Run(t, "ip", "netns", "add", lab.NSName(name, lab.RoleInet))
	t.Cleanup(func() { lab.Down(context.Background(), name) })
	cfg.Name = name
	if _, err := lab.Up(ctx(t), cfg); !errors.Is(err, lab.ErrExists) {
		t.Fatalf("Up over a stale namespace: %v, want ErrExists", err)
	}
	if !netns.Exists(lab.NSName(name, lab.RoleInet)) {
		t.Error("refused Up removed a namespace it did not create")
	}
}

func TestUpFailureRemovesWhatItBuilt(t *testing.T) {
	nstest.RequireRoot(t)
	for _, c := range []struct {
		what   string
		break_ func(*lab.Topology)
		want   string
	}{
		{"route", func(tp *lab.Topology) {
			// A gateway on no connected network: the kernel refuses it.
			tp.Namespaces[5].Routes = append(tp.Namespaces[5].Routes,
				lab.Route{Dst: netip.MustParsePrefix("203.0.113.0/24"), Via: netip.MustParseAddr("192.0.2.1")})
		}, "route add 203.0.113.0/24 via 192.0.2.1"},
		{"process", func(tp *lab.Topology) {
			// An address nobody has: the service cannot listen.
			tp.Processes = append(tp.Processes, lab.Process{Name: "bad", Role: lab.RolePeer,
				Serve: []string{"-whoami", "192.0.2.99:7"}})
		}, "exited before it was ready"},
		{"sysctl", func(tp *lab.Topology) {
			tp.Namespaces[2].Sysctls = append(tp.Namespaces[2].Sysctls, lab.Sysctl{Key: "net.ipv4.no_such_setting", Value: "1"})
		}, "sysctl net.ipv4.no_such_setting"},
	} {
		t.Run(c.what, func(t *testing.T) {
			nstest.RequireRoot(t)
			cfg := labtest.Config(t)
			tp := lab.Default()
			c.break_(&tp)
			cfg.Topology = &tp
			t.Cleanup(func() { lab.Down(context.Background(), cfg.Name) })
			_, err := lab.Up(ctx(t), cfg)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "removed what was built") {
				t.Fatalf("Up: %v, want an error about %q", err, c.want)
			}
			t.Log(err)
			for _, r := range lab.Roles() {
				if netns.Exists(lab.NSName(cfg.Name, r)) {
					t.Errorf("namespace %s remains", lab.NSName(cfg.Name, r))
				}
			}
			if _, err := os.Stat(filepath.Join(lab.RunDir, cfg.Name)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("run directory remains (%v)", err)
			}
			if c.what == "process" {
				// The whoami started before the bad one is gone.
				if pids := helpers(t, cfg.Name); len(pids) > 0 {
					t.Errorf("helper processes remain: %v", pids)
				}
			}
		})
	}
}

func TestTwoLabsCoexist(t *testing.T) {
	a, b := labtest.New(t), labtest.New(t)
	if a.NS(lab.RoleBox) == b.NS(lab.RoleBox) {
		t.Fatalf("both labs use %s", a.NS(lab.RoleBox))
	}
	for _, l := range []*lab.Lab{a, b} {
		if got := whoami(t, l, lab.RoleISP2, "tcp", lab.ServerV6, lab.WhoamiPort, ""); got.String() != lab.ISP2UpV6 {
			t.Errorf("lab %s: whoami saw %s", l.Name, got)
		}
	}
	if err := a.Down(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if got := whoami(t, b, lab.RoleISP1, "tcp", lab.ServerV4, lab.WhoamiPort, ""); got.String() != lab.ISP1UpV4 {
		t.Errorf("lab %s after the other went down: whoami saw %s", b.Name, got)
	}
}

// TestBoxByHand configures the box as specs/lab.yaml says, with ip
// commands, to prove the topology is the one braid will be asked to
// configure: the box leaves by either uplink, a LAN client reaches the
// server over IPv6 (routed prefix) but not over IPv4 (nobody NATs yet).
func TestBoxByHand(t *testing.T) {
	l := labtest.New(t)
	var rules6 []string // ip -batch takes no -6 per line
	box := []string{
		"link set dev " + lab.BoxLANDev + " up",
		"addr add " + lab.BoxLANV4 + "/24 dev " + lab.BoxLANDev,
		"addr add " + lab.BoxLANV6 + "/64 dev " + lab.BoxLANDev + " nodad", // usable at once
	}
	for i, u := range lab.Uplinks() {
		table := itoa(101 + i)
		box = append(box,
			"link set dev "+u.Interface+" up",
			"addr add "+u.Addr4.String()+" dev "+u.Interface,
			"addr add "+u.Addr6.String()+" dev "+u.Interface+" nodad",
			"route add default via "+u.Gateway4.String()+" dev "+u.Interface+" metric "+itoa(10*(i+1)),
			"route add default via "+u.Gateway6.String()+" dev "+u.Interface+" metric "+itoa(10*(i+1)),
			"route add default via "+u.Gateway4.String()+" dev "+u.Interface+" table "+table,
			"route add default via "+u.Gateway6.String()+" dev "+u.Interface+" table "+table,
			"rule add from "+u.Addr4.Addr().String()+" lookup "+table,
		)
		rules6 = append(rules6, "rule add from "+u.Addr6.Addr().String()+" lookup "+table)
	}
	box = append(box,
		"route add "+lab.SteeredPrefixV4+" via "+lab.ISP2GatewayV4,
		"route add "+lab.SteeredPrefixV6+" via "+lab.ISP2GatewayV6,
	)
	for _, batch := range []struct {
		family string
		lines  []string
	}{{"", box}, {"-6", rules6}} {
		args := []string{"-batch", "-"}
		if batch.family != "" {
			args = append([]string{batch.family}, args...)
		}
		cmd := l.Command(ctx(t), lab.RoleBox, "ip", args...)
		cmd.Stdin = strings.NewReader(strings.Join(batch.lines, "\n") + "\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("configuring the box: %v\n%s", err, out)
		}
	}
	run(t, l, lab.RoleBox, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")

	for _, c := range []struct {
		name, server, bind, want string
	}{
		{"wan1-v4", lab.ServerV4, lab.BoxWAN1V4, lab.BoxWAN1V4},
		{"wan2-v4", lab.ServerV4, lab.BoxWAN2V4, lab.BoxWAN2V4},
		{"wan1-v6", lab.ServerV6, lab.BoxWAN1V6, lab.BoxWAN1V6},
		{"wan2-v6", lab.ServerV6, lab.BoxWAN2V6, lab.BoxWAN2V6},
		{"default-v4", lab.ServerV4, "", lab.BoxWAN1V4},
		{"default-v6", lab.ServerV6, "", lab.BoxWAN1V6},
		{"steered-v4", lab.SteeredServerV4, "", lab.BoxWAN2V4},
		{"steered-v6", lab.SteeredServerV6, "", lab.BoxWAN2V6},
		{"peer-wan2", lab.PeerV4, lab.BoxWAN2V4, lab.BoxWAN2V4},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := whoami(t, l, lab.RoleBox, "tcp", c.server, lab.WhoamiPort, c.bind); got.String() != c.want {
				t.Errorf("whoami saw %s, want %s", got, c.want)
			}
		})
	}

	t.Run("lan-v6-routed", func(t *testing.T) {
		if got := whoami(t, l, lab.RoleLAN, "tcp", lab.ServerV6, lab.WhoamiPort, ""); got.String() != lab.LANClientV6 {
			t.Errorf("whoami saw %s, want the LAN client's own %s", got, lab.LANClientV6)
		}
		ping(t, l, lab.RoleLAN, lab.ServerV6)
	})
	t.Run("lan-v4-not-natted", func(t *testing.T) {
		ping(t, l, lab.RoleLAN, lab.BoxLANV4) // the LAN itself works
		c, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		defer cancel()
		ap := netip.AddrPortFrom(netip.MustParseAddr(lab.ServerV4), lab.WhoamiPort).String()
		seen, err := l.Whoami(c, lab.RoleLAN, "tcp", ap, "")
		if err == nil {
			t.Fatalf("the LAN client reached %s over IPv4 without NAT (server saw %s)", ap, seen)
		}
		// Silence (the answer has no way back), not a local error.
		if ne, ok := errors.AsType[net.Error](err); !ok || !ne.Timeout() {
			t.Errorf("want a timeout, got %v", err)
		}
	})
}

func TestStatusAndOpen(t *testing.T) {
	l := labtest.New(t)
	o, err := lab.Open(l.Name)
	if err != nil {
		t.Fatal(err)
	}
	if o.Name != l.Name || o.Dir != l.Dir || !o.Created.Equal(l.Created) ||
		!reflect.DeepEqual(o.Topology, l.Topology) || !slices.Equal(o.Helper, l.Helper) {
		t.Errorf("Open = %+v, want %+v", o, l)
	}
	st, err := o.Status(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	addrs := map[string]map[string][]string{}
	for _, ns := range st.Namespaces {
		addrs[string(ns.Role)] = map[string][]string{}
		for _, ls := range ns.Links {
			addrs[string(ns.Role)][ls.Name] = ls.Addrs
		}
	}
	for _, c := range []struct {
		role lab.Role
		dev  string
		addr string
	}{
		{lab.RoleLAN, lab.LANDev, lab.LANClientV4 + "/24"},
		{lab.RoleLAN, lab.LANDev, lab.LANClientV6 + "/64"},
		{lab.RoleISP1, lab.ISPDownDev, lab.ISP1GatewayV6 + "/64"},
		{lab.RoleISP2, lab.ISPUpDev, lab.ISP2UpV4 + "/30"},
		{lab.RoleInet, "lo", lab.ServerV6 + "/128"},
		{lab.RoleInet, "lo", lab.SteeredServerV4 + "/32"},
		{lab.RolePeer, lab.PeerDev, lab.PeerV4 + "/24"},
	} {
		if !contains(addrs[string(c.role)][c.dev], c.addr) {
			t.Errorf("%s %s: addresses %v, want %s", c.role, c.dev, addrs[string(c.role)][c.dev], c.addr)
		}
	}
	if b, err := json.Marshal(st); err != nil || !strings.Contains(string(b), `"alive":true`) {
		t.Errorf("status JSON: %s (%v)", b, err)
	}
}

func TestStartProcess(t *testing.T) {
	l := labtest.New(t)
	p := lab.Process{Name: "extra", Role: lab.RoleISP1, Serve: []string{"-whoami", lab.ISP1GatewayV4 + ":8080"}}
	if err := l.Start(ctx(t), p); err != nil {
		t.Fatal(err)
	}
	if err := l.Start(ctx(t), p); err == nil {
		t.Error("starting the same process twice succeeded")
	}
	if got := whoami(t, l, lab.RoleISP1, "tcp", lab.ISP1GatewayV4, 8080, ""); got.String() != lab.ISP1GatewayV4 {
		t.Errorf("whoami saw %s", got)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func contains(s []string, v string) bool { return slices.Contains(s, v) }

// helpers returns the live processes that run this test binary as a
// helper of the lab called name.
func helpers(t *testing.T, name string) []int {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if p, err := os.Readlink("/proc/" + e.Name() + "/exe"); err != nil || p != exe {
			continue
		}
		if env, err := os.ReadFile("/proc/" + e.Name() + "/environ"); err == nil && slices.Contains(strings.Split(string(env), "\x00"), lab.NameEnv+"="+name) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func TestUpClearsStaleBraidState(t *testing.T) {
	nstest.RequireRoot(t)
	cfg := labtest.Config(t)
	stale := rundir.For(lab.NSName(cfg.Name, lab.RoleBox)).State
	if err := os.MkdirAll(stale, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(stale) })
	if err := os.WriteFile(filepath.Join(stale, "owned.json"), []byte("{}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	labtest.Up(t, cfg)
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a dead box's state %s survives into the new lab (%v)", stale, err)
	}
}

// Stop stops one of the lab's processes; Resume starts it again.
func TestStopResume(t *testing.T) {
	l := labtest.New(t)
	peer := netip.AddrPortFrom(netip.MustParseAddr(lab.PeerV4), lab.WhoamiPort).String()
	if err := l.Resume(ctx(t), "peer-whoami"); err == nil {
		t.Error("Resume of a running process succeeded")
	}
	if err := l.Stop("peer-whoami"); err != nil {
		t.Fatal(err)
	}
	if seen, err := l.Whoami(ctx(t), lab.RoleInet, "tcp", peer, ""); err == nil {
		t.Errorf("the peer's whoami answered after Stop (saw %s)", seen)
	}
	if err := l.Resume(ctx(t), "peer-whoami"); err != nil {
		t.Fatal(err)
	}
	if got := whoami(t, l, lab.RoleInet, "tcp", lab.PeerV4, lab.WhoamiPort, ""); got.String() != lab.InetPeerV4 {
		t.Errorf("after Resume, whoami saw %s", got)
	}
	if err := l.Resume(ctx(t), "nonesuch"); err == nil {
		t.Error("Resume of a process the topology does not have succeeded")
	}
}
