package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestDefaultTopology(t *testing.T) {
	tp := Default()
	if err := tp.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := tp.roles(); !slices.Equal(got, Roles()) {
		t.Errorf("roles %v, want %v", got, Roles())
	}
	// The box: three links, all down, no address, no route, no qdisc.
	var boxDevs []string
	for _, l := range tp.Links {
		for _, e := range []Endpoint{l.A, l.B} {
			if e.Role == RoleBox {
				boxDevs = append(boxDevs, e.Dev)
				if !e.Down {
					t.Errorf("box %s is brought up", e.Dev)
				}
			}
		}
	}
	slices.Sort(boxDevs)
	if want := []string{BoxLANDev, BoxWAN1Dev, BoxWAN2Dev}; !slices.Equal(boxDevs, want) {
		t.Errorf("box links %v, want %v", boxDevs, want)
	}
	for _, ns := range tp.Namespaces {
		if ns.Role == RoleBox && (len(ns.Addrs)+len(ns.Routes)+len(ns.Qdiscs) > 0) {
			t.Errorf("the lab configures the box: %+v", ns)
		}
		for _, rt := range ns.Routes {
			if rt.Dst.Contains(netip.MustParseAddr(LANClientV4)) && rt.Dst.Bits() > 0 {
				t.Errorf("%s routes the LAN's private prefix: %+v", ns.Role, rt)
			}
		}
		dad, acceptRA := false, false
		for _, s := range ns.Sysctls {
			dad = dad || s.Key == "net.ipv6.conf.default.accept_dad" && s.Value == "0"
			acceptRA = acceptRA || s.Key == "net.ipv6.conf.default.accept_ra" && s.Value == "0"
		}
		if !dad {
			t.Errorf("%s: DAD stays on", ns.Role)
		}
		if ns.Role == RoleBox && !acceptRA {
			t.Error("the box's kernel accepts router advertisements: it would configure the box from isp2's")
		}
	}
	// The uplinks agree with the table.
	for _, u := range Uplinks() {
		var isp *Namespace
		for i := range tp.Namespaces {
			if tp.Namespaces[i].Role == u.ISP {
				isp = &tp.Namespaces[i]
			}
		}
		if isp == nil {
			t.Fatalf("no namespace for %s", u.ISP)
		}
		if !slices.Contains(isp.Addrs, Addr{ISPDownDev, netip.PrefixFrom(u.Gateway4, u.Addr4.Bits())}) ||
			!slices.Contains(isp.Addrs, Addr{ISPDownDev, netip.PrefixFrom(u.Gateway6, u.Addr6.Bits())}) {
			t.Errorf("%s: gateways %s, %s not on %s: %+v", u.ISP, u.Gateway4, u.Gateway6, ISPDownDev, isp.Addrs)
		}
		if !u.Addr4.Contains(u.Gateway4) || !u.Addr6.Contains(u.Gateway6) {
			t.Errorf("%s: gateway outside the box's prefix", u.Name)
		}
		for _, q := range isp.Qdiscs {
			if q.Rate != u.Rate {
				t.Errorf("%s %s: rate %d, want %d", u.ISP, q.Dev, q.Rate, u.Rate)
			}
		}
	}
}

// A command's {conf} and {pidfile} are the process's files in the lab's
// run directory; isp2's adverts are radvd's, with the lab's prefix.
func TestCommandArgs(t *testing.T) {
	got := expandArgs([]string{"radvd", "--config", "{conf}", "--pidfile={pidfile}"}, "/run/braid-lab/x", "radvd")
	want := []string{"radvd", "--config", "/run/braid-lab/x/procs/radvd.conf", "--pidfile=/run/braid-lab/x/procs/radvd.pid"}
	if !slices.Equal(got, want) {
		t.Errorf("expandArgs = %q, want %q", got, want)
	}
	var radvd *Process
	for i, p := range Default().Processes {
		if p.Name == ISP2AdvertsProcess {
			radvd = &Default().Processes[i]
		}
	}
	if radvd == nil || radvd.Role != RoleISP2 || radvd.Command[0] != "radvd" || !slices.Contains(radvd.Command, "{conf}") {
		t.Fatalf("isp2's adverts: %+v", radvd)
	}
	for _, w := range []string{"interface down {", "prefix 2001:db8:102::/64 {", "AdvAutonomous on;", "RDNSS 2001:db8:ffff::53 {", "AdvDefaultLifetime 90;"} {
		if !strings.Contains(radvd.Config, w) {
			t.Errorf("radvd's configuration lacks %q:\n%s", w, radvd.Config)
		}
	}
	if !strings.Contains(ISP2Adverts(0), "AdvDefaultLifetime 0;") {
		t.Error("ISP2Adverts(0) is still a default router")
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		name   string
		break_ func(*Topology)
		want   string
	}{
		{"duplicate role", func(tp *Topology) { tp.Namespaces = append(tp.Namespaces, Namespace{Role: RoleBox}) }, "appears twice"},
		{"bad role", func(tp *Topology) { tp.Namespaces[0].Role = "LAN-1" }, "invalid role"},
		{"long ifname", func(tp *Topology) { tp.Links[0].A.Dev = "a-very-long-name0" }, "invalid interface name"},
		{"dup ifname", func(tp *Topology) { tp.Links[1].B.Dev = BoxLANDev }, "appears twice"},
		{"multicast MAC", func(tp *Topology) { tp.Links[0].A.MAC = "01:00:5e:00:00:01" }, "not a unicast Ethernet address"},
		{"bad MAC", func(tp *Topology) { tp.Links[0].A.MAC = "02:00:00:00:50" }, "not a unicast Ethernet address"},
		{"unknown link role", func(tp *Topology) { tp.Links[0].A.Role = "lns" }, "no namespace"},
		{"addr on unknown dev", func(tp *Topology) {
			tp.Namespaces[0].Addrs = append(tp.Namespaces[0].Addrs, Addr{"eth9", netip.MustParsePrefix("10.0.0.1/24")})
		}, "unknown interface"},
		{"route without gateway", func(tp *Topology) {
			tp.Namespaces[0].Routes = append(tp.Namespaces[0].Routes, Route{Dst: netip.MustParsePrefix("10.0.0.0/8")})
		}, "needs a destination"},
		{"qdisc without rate", func(tp *Topology) { tp.Namespaces[2].Qdiscs[0].Rate = 0 }, "no rate"},
		{"process both", func(tp *Topology) { tp.Processes[0].Command = []string{"true"} }, "exactly one"},
		{"process twice", func(tp *Topology) { tp.Processes = append(tp.Processes, tp.Processes[0]) }, "appears twice"},
		{"process name", func(tp *Topology) { tp.Processes[0].Name = "../x" }, "invalid process name"},
		{"config of a service", func(tp *Topology) { tp.Processes[0].Config = "x" }, "a Config is for a Command"},
	} {
		t.Run(c.name, func(t *testing.T) {
			tp := Default()
			c.break_(&tp)
			if err := tp.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Validate() = %v, want %q", err, c.want)
			}
		})
	}
}

func TestBatches(t *testing.T) {
	tp := Default()
	links := tp.linkBatch(func(r Role) string { return NSName("braid", r) })
	if links[1] != "link add name down netns braid-isp1 type veth peer name wan1 netns braid-box" {
		t.Errorf("link line %q", links[1])
	}
	isp1 := tp.Namespaces[2]
	want := []string{
		"link set dev lo up",
		"link set dev down up",
		"link set dev up up",
		"addr add 10.101.0.1/24 dev down",
		"addr add 2001:db8:101::1/64 dev down nodad",
		"addr add 10.201.0.2/30 dev up",
		"addr add 2001:db8:201::2/64 dev up nodad",
		"route add 0.0.0.0/0 via 10.201.0.1",
		"route add ::/0 via 2001:db8:201::1",
		"route add 2001:db8:50::/64 via 2001:db8:101::2",
	}
	if got := tp.namespaceBatch(isp1); !slices.Equal(got, want) {
		t.Errorf("isp1 batch:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The LAN client's fixed MAC is set before its link comes up.
	if got := tp.namespaceBatch(tp.Namespaces[0])[1:3]; !slices.Equal(got, []string{
		"link set dev " + LANDev + " address " + LANClientMAC, "link set dev " + LANDev + " up"}) {
		t.Errorf("LAN client batch %q", got)
	}
	if got := tp.namespaceBatch(tp.Namespaces[1]); !slices.Equal(got, []string{"link set dev lo up"}) {
		t.Errorf("box batch %q", got)
	}
	wantQ := []string{
		"qdisc add dev down root tbf rate 50000000bit burst 65536 latency 50ms",
		"qdisc add dev up root tbf rate 50000000bit burst 65536 latency 50ms",
	}
	if got := qdiscBatch(isp1); !slices.Equal(got, wantQ) {
		t.Errorf("isp1 qdiscs %q, want %q", got, wantQ)
	}
	if got := tbfBurst(1_000_000_000); got != 1_250_000 {
		t.Errorf("burst at 1 Gbit/s = %d", got)
	}
}

func TestValidName(t *testing.T) {
	for _, ok := range []string{"braid", "lt0a1b2c", "a", "my_lab-2", strings.Repeat("x", 32)} {
		if err := ValidName(ok); err != nil {
			t.Errorf("ValidName(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "-x", "a/b", "..", "a b", "é", strings.Repeat("x", 33)} {
		if err := ValidName(bad); err == nil {
			t.Errorf("ValidName(%q) accepted", bad)
		}
	}
}

func TestCommandError(t *testing.T) {
	lines := []string{"link set dev lo up", "route add 10.0.0.0/8 via 192.0.2.1"}
	_, err := run(context.Background(), "ns1", lines, "sh", "-c", "cat >/dev/null; echo 'Error: Nexthop has invalid gateway.' >&2; echo 'Command failed -:2' >&2; exit 1")
	var ce *CommandError
	if !errors.As(err, &ce) {
		t.Fatalf("error %T %v", err, err)
	}
	if ce.Line != lines[1] || ce.Namespace != "ns1" {
		t.Errorf("%+v", ce)
	}
	for _, want := range []string{"namespace ns1", "sh -c", `"route add 10.0.0.0/8 via 192.0.2.1"`, "exit status 1", "Nexthop has invalid gateway"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q lacks %q", err, want)
		}
	}
}

// TestServeWhoami runs the services on loopback: no namespace, no root.
func TestServeWhoami(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// Serve reports readiness on a descriptor; give it a duplicate of w.
	fd, err := dupFD(w)
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	port4, port6 := freePort(t, "tcp4", "127.0.0.1:0"), freePort(t, "udp4", "127.0.0.1:0")
	dl4, dl6 := freePort(t, "tcp4", "127.0.0.1:0"), freePort(t, "tcp6", "[::1]:0")
	args := []string{"-whoami", fmt.Sprintf("127.0.0.1:%d", port4), "-whoami-udp", fmt.Sprintf("127.0.0.1:%d", port6),
		"-download", fmt.Sprintf("127.0.0.1:%d", dl4), "-download", fmt.Sprintf("[::1]:%d", dl6), "-ready-fd", fmt.Sprint(fd)}
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, args) }()
	if err := waitReady(ctx, r); err != nil {
		t.Fatalf("not ready: %v (serve: %v)", err, drain(done))
	}
	for _, c := range []struct{ network, server, bind string }{
		{"tcp", fmt.Sprintf("127.0.0.1:%d", port4), ""},
		{"tcp", fmt.Sprintf("127.0.0.1:%d", port4), "127.0.0.2"},
		{"udp", fmt.Sprintf("127.0.0.1:%d", port6), "127.0.0.3"},
	} {
		seen, err := Whoami(ctx, c.network, c.server, c.bind)
		if err != nil {
			t.Fatal(err)
		}
		want := "127.0.0.1"
		if c.bind != "" {
			want = c.bind
		}
		if seen.Addr().String() != want || seen.Port() == 0 {
			t.Errorf("%s %s from %q: saw %s", c.network, c.server, c.bind, seen)
		}
	}
	// The download service sends until the client has had enough, in
	// each family; several clients at once.
	var wg sync.WaitGroup
	for _, server := range []string{fmt.Sprintf("127.0.0.1:%d", dl4), fmt.Sprintf("[::1]:%d", dl6)} {
		for range 2 {
			wg.Go(func() {
				const size = 3*downloadChunk + 12345
				var last int64
				n, err := Download(ctx, "tcp", server, "", size, func(got int64) {
					if got <= last {
						t.Errorf("download %s: progress went from %d to %d", server, last, got)
					}
					last = got
				})
				if err != nil || n != size || last != size {
					t.Errorf("download %s: %d bytes (progress said %d), %v; want %d", server, n, last, err, size)
				}
			})
		}
	}
	wg.Wait()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
}

func TestServeErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "nothing to serve"},
		{[]string{"-whoami", "nonsense"}, "invalid"},
		{[]string{"-whoami", "127.0.0.1:1", "extra"}, "unexpected arguments"},
		{[]string{"-whoami", "192.0.2.99:7"}, "cannot assign"},
	} {
		if err := Serve(context.Background(), c.args); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Serve(%q) = %v, want %q", c.args, err, c.want)
		}
	}
	if _, err := Whoami(context.Background(), "sctp", "127.0.0.1:7", ""); err == nil {
		t.Error("Whoami accepted network sctp")
	}
	if _, err := Download(context.Background(), "udp", "127.0.0.1:7", "", 1, nil); err == nil {
		t.Error("Download accepted network udp")
	}
	if _, err := Download(context.Background(), "tcp", "127.0.0.1:7", "", 0, nil); err == nil {
		t.Error("Download accepted size 0")
	}
	// A server that closes early: fewer bytes than asked is an error.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.Write([]byte("short"))
			c.Close()
		}
	}()
	if n, err := Download(context.Background(), "tcp", ln.Addr().String(), "", 100, nil); err == nil || n != 5 {
		t.Errorf("Download from a server that sends 5 bytes of 100: %d, %v", n, err)
	}
}

func TestProcStat(t *testing.T) {
	state, start, ppid, err := procStat(os.Getpid())
	if err != nil || state == 0 || start == 0 || ppid != os.Getppid() {
		t.Errorf("procStat(self) = %c %d %d %v", state, start, ppid, err)
	}
	// A process that exits is gone, and stopPIDs stops one that does not.
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go cmd.Wait()
	rec := procRecord{PID: cmd.Process.Pid}
	_, rec.StartTime, _, _ = procStat(rec.PID)
	if !rec.alive() {
		t.Fatal("sleep is not alive")
	}
	if wrong := (procRecord{PID: rec.PID, StartTime: rec.StartTime + 1}); wrong.alive() {
		t.Error("a record with another start time matches")
	}
	if left := stopPIDs([]int{rec.PID}); len(left) > 0 {
		t.Errorf("stopPIDs left %v", left)
	}
	if rec.alive() {
		t.Error("sleep survived stopPIDs")
	}
}

// dupFD duplicates f's descriptor for code that takes a descriptor number.
func dupFD(f *os.File) (int, error) {
	return unix.Dup(int(f.Fd()))
}

// freePort returns a port that was free a moment ago.
func freePort(t *testing.T, network, addr string) int {
	t.Helper()
	if strings.HasPrefix(network, "udp") {
		pc, err := net.ListenPacket(network, addr)
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		return pc.LocalAddr().(*net.UDPAddr).Port
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// drain returns Serve's error if it has returned.
func drain(done chan error) error {
	select {
	case err := <-done:
		return err
	default:
		return nil
	}
}

// isp1's DHCP server answers vendor classes that begin with "neufbox"
// only: dnsmasq compares option 60 given as hex octets from its first
// byte (its dhcp-vendorclass would match anywhere in the option).
func TestISP1DHCP4Command(t *testing.T) {
	got := strings.Join(ISP1DHCP4().Command(), " ")
	for _, want := range []string{
		"--interface=down ",
		"--dhcp-range=10.101.0.2,10.101.0.2,255.255.255.0,120 ",
		"--dhcp-option=option:router,10.101.0.1 ",
		"--dhcp-option=option:T1,10 ", "--dhcp-option=option:T2,60 ",
		"--dhcp-match=set:vendor,60,6e:65:75:66:62:6f:78 --dhcp-ignore=tag:!vendor",
		"--leasefile-ro", "--conf-file=/dev/null", "--port=0 ",
	} {
		if !strings.Contains(got+" ", want) {
			t.Errorf("dnsmasq command %q lacks %q", got, want)
		}
	}
	if strings.Contains(got, "dhcp-vendorclass") {
		t.Errorf("dnsmasq command %q matches the vendor class as a substring", got)
	}
}
