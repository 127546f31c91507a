package main

import (
	"encoding/json"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/braid-router/braid/internal/nstest"
	"github.com/braid-router/braid/lab"
	"github.com/braid-router/braid/reconcile"
	"github.com/braid-router/braid/reconcile/plan"
)

// foreignTables lists every table of the box but braid's as nft shows
// them without counters (-s) and with handles (-a): what must not change
// when braid applies or destroys.
func (b *labBox) foreignTables() string {
	b.t.Helper()
	var out []string
	for _, line := range strings.Split(b.run(lab.RoleBox, "nft", "list", "tables"), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || f[0] != "table" || (f[1] == "inet" && f[2] == "braid") {
			continue
		}
		out = append(out, b.run(lab.RoleBox, "nft", "-s", "-a", "list", "table", f[1], f[2]))
	}
	return strings.Join(out, "\n")
}

// planWarnings runs braid plan --json and returns its warnings.
func (b *labBox) planWarnings() []plan.Warning {
	b.t.Helper()
	r := b.braid(nil, "plan", "--json", "-f", "../../specs/lab.yaml")
	if r.code != 0 && r.code != 2 {
		b.t.Fatalf("braid plan: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	var doc reconcile.PlanDocument
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		b.t.Fatalf("plan document: %v\n%s", err, r.stdout)
	}
	return doc.Warnings
}

// dropped lists the intents of foreign-drop warnings, with the table and
// chain that drop them ("lan-isp1 ip filter FORWARD").
func dropped(ws []plan.Warning) []string {
	var out []string
	for _, w := range ws {
		if w.Kind == plan.WarnForeignDrop {
			out = append(out, w.IntentID+" "+w.Table+" "+w.Chain)
		}
	}
	return out
}

func hasIntent(ws []plan.Warning, id string) bool {
	return slices.ContainsFunc(ws, func(w plan.Warning) bool { return w.Kind == plan.WarnForeignDrop && w.IntentID == id })
}

// fixes collects the commands the warnings suggest that start with
// prefix, each once.
func fixes(ws []plan.Warning, prefix string) []string {
	var out []string
	for _, w := range ws {
		for _, c := range strings.Split(w.Fix, "; ") {
			if strings.HasPrefix(c, prefix) && !slices.Contains(out, c) {
				out = append(out, c)
			}
		}
	}
	return out
}

// foreignCase is another firewall on the lab's box.
type foreignCase struct {
	// setup installs it; want are intents it must be found dropping, and
	// (lan-isp1 among them) the table and chain.
	setup func(b *labBox)
	want  []string
	// fixWAN2, if set, lets lan0 -> wan2 through (both ways) and nothing
	// else.
	fixWAN2 func(b *labBox)
	// fix applies the fixes of the warnings.
	fix func(b *labBox, ws []plan.Warning)
	// cutsLAN4 says the firewall keeps the LAN from the Internet over
	// IPv4 until fixed, which the test checks with real packets.
	cutsLAN4 bool
}

// runForeign is the scenario every other firewall goes through: plan
// names its drops, apply leaves it alone and says it is defeated, a fix
// for wan2 alone leaves wan1's warning, the suggested fix makes the
// warnings go and the LAN reach the Internet (replies included) and the
// port forward work, and destroy leaves it as it was.
func runForeign(t *testing.T, c foreignCase) {
	b := newLabBox(t)
	c.setup(b)
	before := b.foreignTables()
	ws := b.planWarnings()
	got := dropped(ws)
	for _, w := range c.want {
		if !slices.Contains(got, w) {
			t.Errorf("plan: no warning %q among\n  %s", w, strings.Join(got, "\n  "))
		}
	}
	for _, w := range ws {
		if strings.Contains(w.Message, "eth9") || strings.Contains(w.By, "eth9") {
			t.Errorf("a chain that drops only on eth9, which braid does not use, is named: %s", w.Message)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	out := b.braidOK("apply", "-f", "../../specs/lab.yaml")
	if !strings.Contains(out, "Verified: the live state matches the spec, but another firewall on this box drops") ||
		!strings.Contains(out, "Defeated by what else is on this box") {
		t.Errorf("apply said:\n%s", out)
	}
	if after := b.foreignTables(); after != before {
		t.Errorf("apply changed the other tables:\n%s\nwere\n%s", after, before)
	}
	if c.cutsLAN4 {
		server4 := netip.AddrPortFrom(netip.MustParseAddr(lab.ServerV4), lab.WhoamiPort).String()
		if got := b.whoami(lab.RoleLAN, "tcp", server4); !strings.HasPrefix(got, "error") {
			t.Errorf("before the fix, the LAN reached the server from %s: the warning was wrong", got)
		}
	}
	if c.fixWAN2 != nil {
		c.fixWAN2(b)
		ws := b.planWarnings()
		if !hasIntent(ws, "lan-isp1") || hasIntent(ws, "lan-isp2") {
			t.Errorf("after the fix for wan2 alone: %s", strings.Join(dropped(ws), "; "))
		}
	}
	c.fix(b, b.planWarnings())
	if ws := b.planWarnings(); len(ws) > 0 {
		var msgs []string
		for _, w := range ws {
			msgs = append(msgs, strings.Join(w.Lines(), "\n"))
		}
		t.Fatalf("warnings after the fix:\n%s", strings.Join(msgs, "\n"))
	}
	// Real packets: the LAN reaches the Internet over both families (a
	// TCP answer needs the replies through), and the port forward the
	// LAN client.
	b.run(lab.RoleLAN, "ip", "neigh", "flush", "all")
	ap := func(a string, port uint16) string { return netip.AddrPortFrom(netip.MustParseAddr(a), port).String() }
	b.serve("lansvc", lab.RoleLAN, ap(lab.LANClientV4, 8080), ap(lab.LANClientV6, 8080))
	for _, k := range []struct{ what, from, network, server, want string }{
		{"IPv4 out, NATed", "lan", "tcp", ap(lab.ServerV4, lab.WhoamiPort), lab.BoxWAN1V4},
		{"IPv4 UDP out and back", "lan", "udp", ap(lab.ServerV4, lab.WhoamiPort), lab.BoxWAN1V4},
		{"IPv6 out", "lan", "tcp", ap(lab.ServerV6, lab.WhoamiPort), lab.LANClientV6},
		{"IPv4 port forward", "inet", "tcp", ap(lab.BoxWAN1V4, 8080), lab.InetISP1V4},
	} {
		role := lab.RoleLAN
		if k.from == "inet" {
			role = lab.RoleInet
		}
		if got := b.whoami(role, k.network, k.server); got != k.want {
			t.Errorf("%s after the fix: %s, want %s", k.what, got, k.want)
		}
	}
	fixed := b.foreignTables()
	b.braidOK("destroy", "--yes")
	if after := b.foreignTables(); after != fixed {
		t.Errorf("destroy changed the other tables:\n%s\nwere\n%s", after, fixed)
	}
}

// TestForeignLabDocker: Docker 20.10's rules (Debian's docker.io), made
// with iptables-nft in the box as dockerd makes them. FORWARD's policy
// drops the LAN's IPv4 out of both uplinks, and the port forwards; the
// fix is DOCKER-USER, both directions.
func TestForeignLabDocker(t *testing.T) {
	nstest.RequireBinary(t, "iptables-nft")
	ipt := func(b *labBox, args ...string) { b.run(lab.RoleBox, "iptables-nft", args...) }
	runForeign(t, foreignCase{
		setup: func(b *labBox) {
			for _, args := range dockerRules {
				ipt(b, args...)
			}
		},
		want: []string{"lan-isp1 ip filter FORWARD", "lan-isp2 ip filter FORWARD",
			"forward-tcp-8080-isp1 ip filter FORWARD", "forward-tcp-8080-isp2 ip filter FORWARD"},
		fixWAN2: func(b *labBox) {
			ipt(b, "-I", "DOCKER-USER", "-i", "lan0", "-o", "wan2", "-j", "ACCEPT")
			ipt(b, "-I", "DOCKER-USER", "-i", "wan2", "-o", "lan0", "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT")
		},
		cutsLAN4: true,
		fix: func(b *labBox, ws []plan.Warning) {
			cmds := fixes(ws, "iptables ")
			if len(cmds) == 0 {
				t.Fatal("no iptables fix suggested")
			}
			for _, c := range cmds {
				f := strings.Fields(c)
				ipt(b, f[1:]...)
			}
		},
	})
}

// dockerRules are the commands Docker 20.10 runs through iptables-nft for
// its default bridge, without a container.
var dockerRules = [][]string{
	{"-N", "DOCKER"}, {"-N", "DOCKER-ISOLATION-STAGE-1"}, {"-N", "DOCKER-ISOLATION-STAGE-2"}, {"-N", "DOCKER-USER"},
	{"-P", "FORWARD", "DROP"},
	{"-A", "FORWARD", "-j", "DOCKER-USER"},
	{"-A", "FORWARD", "-j", "DOCKER-ISOLATION-STAGE-1"},
	{"-A", "FORWARD", "-o", "docker0", "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"},
	{"-A", "FORWARD", "-o", "docker0", "-j", "DOCKER"},
	{"-A", "FORWARD", "-i", "docker0", "!", "-o", "docker0", "-j", "ACCEPT"},
	{"-A", "FORWARD", "-i", "docker0", "-o", "docker0", "-j", "ACCEPT"},
	{"-A", "DOCKER-ISOLATION-STAGE-1", "-i", "docker0", "!", "-o", "docker0", "-j", "DOCKER-ISOLATION-STAGE-2"},
	{"-A", "DOCKER-ISOLATION-STAGE-1", "-j", "RETURN"},
	{"-A", "DOCKER-ISOLATION-STAGE-2", "-o", "docker0", "-j", "DROP"},
	{"-A", "DOCKER-ISOLATION-STAGE-2", "-j", "RETURN"},
	{"-A", "DOCKER-USER", "-j", "RETURN"},
	{"-t", "nat", "-N", "DOCKER"},
	{"-t", "nat", "-A", "PREROUTING", "-m", "addrtype", "--dst-type", "LOCAL", "-j", "DOCKER"},
	{"-t", "nat", "-A", "OUTPUT", "!", "-d", "127.0.0.0/8", "-m", "addrtype", "--dst-type", "LOCAL", "-j", "DOCKER"},
	{"-t", "nat", "-A", "POSTROUTING", "-s", "172.17.0.0/16", "!", "-o", "docker0", "-j", "MASQUERADE"},
	{"-t", "nat", "-A", "DOCKER", "-i", "docker0", "-j", "RETURN"},
}

// TestForeignLabUFW: ufw enabled for real in the box's namespace, with a
// copy of /etc/ufw bind-mounted in a mount namespace of its own, so the
// host's is never touched. Its FORWARD and INPUT policies drop; the fix is
// ufw's own commands.
func TestForeignLabUFW(t *testing.T) {
	nstest.RequireBinary(t, "ufw")
	nstest.RequireBinary(t, "unshare")
	conf := filepath.Join(t.TempDir(), "ufw")
	if out, err := exec.Command("cp", "-a", "/etc/ufw", conf).CombinedOutput(); err != nil {
		t.Fatalf("copy /etc/ufw: %v\n%s", err, out)
	}
	ufw := func(b *labBox, args ...string) {
		b.t.Helper()
		script := "mount --bind " + conf + " /etc/ufw && exec ufw " + strings.Join(args, " ")
		b.run(lab.RoleBox, "unshare", "-m", "sh", "-c", script)
	}
	before, err := os.ReadFile("/etc/ufw/ufw.conf")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if after, err := os.ReadFile("/etc/ufw/ufw.conf"); err != nil || string(after) != string(before) {
			t.Errorf("the host's /etc/ufw/ufw.conf changed: %v\n%s", err, after)
		}
	})
	runForeign(t, foreignCase{
		setup: func(b *labBox) { ufw(b, "--force", "enable") },
		want: []string{"lan-isp1 ip filter FORWARD", "lan-isp2 ip6 filter FORWARD",
			"open-tcp-2222-isp1 ip filter INPUT", "lan ip filter INPUT", "forward-tcp-8080-isp1 ip filter FORWARD"},
		fixWAN2:  func(b *labBox) { ufw(b, "route", "allow", "in", "on", "lan0", "out", "on", "wan2") },
		cutsLAN4: true,
		fix: func(b *labBox, ws []plan.Warning) {
			cmds := fixes(ws, "ufw ")
			if len(cmds) == 0 {
				t.Fatal("no ufw fix suggested")
			}
			for _, c := range cmds {
				ufw(b, strings.Fields(c)[1:]...)
			}
		},
	})
}

// hardenedRuleset is a hardened host's nftables.conf: input and forward
// drop by policy; and a chain that drops only on an interface braid does
// not use.
const hardenedRuleset = `table inet hardened {
	chain input {
		type filter hook input priority filter; policy drop;
		iifname "lo" accept
		ct state established,related accept
		ct state invalid drop
		tcp dport 22 accept
		icmp type echo-request accept
		icmpv6 type { echo-request, nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert } accept
	}
	chain forward {
		type filter hook forward priority filter; policy drop;
		ct state established,related accept
	}
	chain output {
		type filter hook output priority filter; policy accept;
	}
	chain unused {
		type filter hook forward priority 10; policy accept;
		iifname "eth9" drop
	}
}
`

// TestForeignLabHardened: a hardened nftables ruleset loaded from a file;
// the fix is the nft commands the warnings suggest.
func TestForeignLabHardened(t *testing.T) {
	nft := func(b *labBox, args ...string) { b.run(lab.RoleBox, "nft", args...) }
	runForeign(t, foreignCase{
		setup: func(b *labBox) {
			path := filepath.Join(t.TempDir(), "nftables.conf")
			if err := os.WriteFile(path, []byte(hardenedRuleset), 0o644); err != nil {
				t.Fatal(err)
			}
			nft(b, "-f", path)
		},
		want: []string{"lan-isp1 inet hardened forward", "lan-isp2 inet hardened forward",
			"forward-tcp-8080-isp1 inet hardened forward", "forward-tcp-8080-isp1-v6 inet hardened forward",
			"open-tcp-2222-isp1 inet hardened input", "lan inet hardened input"},
		fixWAN2: func(b *labBox) {
			nft(b, "insert", "rule", "inet", "hardened", "forward", "iifname", "lan0", "oifname", "wan2", "accept")
		},
		cutsLAN4: true,
		fix: func(b *labBox, ws []plan.Warning) {
			cmds := fixes(ws, "nft insert rule ")
			if len(cmds) == 0 {
				t.Fatal("no nft fix suggested")
			}
			for _, c := range cmds {
				// The suggestion quotes names for a shell.
				b.run(lab.RoleBox, "sh", "-c", c)
			}
		},
	})
}

// TestForeignLabFW4: OpenWrt's fw4 default ruleset (fw4 does not run
// here: testdata/fw4.nft is its output for a router with lan0 in zone lan
// and wan1 in zone wan), and wan2, braid's second uplink, in no zone. The
// fix is fw4's output once wan2 is in zone wan with a rule for the open
// port and for the forward (testdata/fw4-fixed.nft).
func TestForeignLabFW4(t *testing.T) {
	load := func(b *labBox, file string) {
		b.t.Helper()
		path, err := filepath.Abs(filepath.Join("testdata", file))
		if err != nil {
			b.t.Fatal(err)
		}
		// fw4 replaces its whole table at each reload.
		if strings.Contains(b.run(lab.RoleBox, "nft", "list", "tables"), "table inet fw4") {
			b.run(lab.RoleBox, "nft", "delete", "table", "inet", "fw4")
		}
		b.run(lab.RoleBox, "nft", "-f", path)
	}
	runForeign(t, foreignCase{
		setup: func(b *labBox) { load(b, "fw4.nft") },
		want: []string{"lan-isp2 inet fw4 forward", "open-tcp-2222-isp1 inet fw4 input",
			"forward-tcp-8080-isp1 inet fw4 forward", "forward-tcp-8080-isp1-v6 inet fw4 forward"},
		fix: func(b *labBox, ws []plan.Warning) {
			for _, w := range ws {
				if w.Firewall != "OpenWrt fw4" || !strings.Contains(w.Fix, "/etc/config/firewall") {
					t.Errorf("fw4's warning suggests %q (%s)", w.Fix, w.Firewall)
				}
			}
			load(b, "fw4-fixed.nft")
		},
	})
}

// TestForeignLabLegacy: legacy iptables rules, invisible to nftables, are
// not analysed, and plan says so; an empty legacy table says nothing.
func TestForeignLabLegacy(t *testing.T) {
	nstest.RequireBinary(t, "iptables-legacy")
	b := newLabBox(t)
	b.run(lab.RoleBox, "iptables-legacy", "-L", "-n") // makes the filter table, empty
	for _, w := range b.planWarnings() {
		t.Errorf("with an empty legacy table: %s", w.Message)
	}
	b.run(lab.RoleBox, "iptables-legacy", "-P", "FORWARD", "DROP")
	b.run(lab.RoleBox, "iptables-legacy", "-A", "INPUT", "-i", "wan1", "-j", "DROP")
	ws := b.planWarnings()
	if len(ws) != 1 || ws[0].Kind != plan.WarnUnanalysed ||
		!strings.HasPrefix(ws[0].Message, "iptables-legacy table filter: 1 rule(s), FORWARD policy DROP: legacy iptables rules are invisible to nftables") {
		t.Errorf("warnings: %+v", ws)
	}
	if r := b.braid(nil, "plan", "-f", "../../specs/lab.yaml"); r.code != 2 || !strings.Contains(r.stdout, "braid could not check everything else on this box") && !strings.Contains(r.stdout, "iptables-legacy table filter") {
		t.Errorf("plan: exit %d\n%s", r.code, r.stdout)
	}
}

// TestForeignLabDaemon: braid run shows the drops in its status while
// they hold, logs each once when it appears and once when it goes (the
// other firewall's change is a kernel notification like any other).
func TestForeignLabDaemon(t *testing.T) {
	nstest.RequireBinary(t, "iptables-nft")
	b := newLabBox(t)
	for _, args := range dockerRules {
		b.run(lab.RoleBox, "iptables-nft", args...)
	}
	d := b.startDaemon("-f", "../../specs/lab.yaml")
	st := d.until("the Docker warnings", func(st reconcile.Status) bool {
		return converged(st) && hasIntent(st.PlanWarnings, "lan-isp1") && hasIntent(st.PlanWarnings, "lan-isp2")
	})
	r := b.braid(nil, "status")
	if r.code != 0 || !strings.Contains(r.stdout, "defeated:") || !strings.Contains(r.stdout, "usual fix (Docker): iptables -I DOCKER-USER") {
		t.Errorf("braid status:\n%s", r.stdout)
	}
	for _, c := range fixes(st.PlanWarnings, "iptables ") {
		b.run(lab.RoleBox, "iptables-nft", strings.Fields(c)[1:]...)
	}
	d.until("the warnings to go", func(st reconcile.Status) bool { return converged(st) && len(st.PlanWarnings) == 0 })
	logs := d.logs.String()
	key := "lan-isp1|ip filter FORWARD|policy drop"
	if n := strings.Count(logs, "defeats the spec"); n != len(st.PlanWarnings) {
		t.Errorf("%d warnings logged as they appeared, want %d:\n%s", n, len(st.PlanWarnings), logs)
	}
	if !strings.Contains(logs, `msg="no longer defeated" warning="`+key+`"`) {
		t.Errorf("the warning's going is not logged:\n%s", logs)
	}
}
