package foreignfw

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// labSite is the lab's box: lan0 and two uplinks, a port forward and an
// open port.
func labSite() (Site, Firewall) {
	a := netip.MustParseAddr
	s := Site{
		LAN:         "lan0",
		LANPrefixes: []netip.Prefix{netip.MustParsePrefix("192.168.50.0/24"), netip.MustParsePrefix("2001:db8:50::/64")},
		LANAddrs:    []netip.Addr{a("192.168.50.1"), a("2001:db8:50::1")},
		Uplinks: []Uplink{
			{Name: "isp1", Link: "wan1", V4: true, V6: true, Addr4: a("10.101.0.2"), Addr6: a("2001:db8:101::2")},
			{Name: "isp2", Link: "wan2", V4: true, V6: true, Addr4: a("10.102.0.2"), Addr6: a("2001:db8:102::2")},
		},
	}
	fw := Firewall{
		Open:    []Open{{Proto: "tcp", Port: 2222}},
		Forward: []Forward{{Proto: "tcp", Port: 8080, To: netip.MustParseAddrPort("192.168.50.10:8080")}},
	}
	return s, fw
}

// dockerFilter is table ip filter as Docker 20.10 leaves it (iptables-nft),
// with rules inserted at the top of DOCKER-USER.
func dockerFilter(user ...Rule) Table {
	return Table{Family: FamilyIPv4, Name: "filter", Chains: []Chain{
		regular("DOCKER"),
		regular("DOCKER-ISOLATION-STAGE-1",
			rule(`iifname "docker0" oifname != "docker0" jump DOCKER-ISOLATION-STAGE-2`, iifXT("docker0"), oifNot("docker0"), counter(), jump("DOCKER-ISOLATION-STAGE-2")),
			rule("return", counter(), ret())),
		regular("DOCKER-ISOLATION-STAGE-2",
			rule(`oifname "docker0" drop`, oif("docker0"), counter(), drop()),
			rule("return", counter(), ret())),
		regular("DOCKER-USER", append(user, rule("return", counter(), ret()))...),
		base("FORWARD", HookForward, 0, "drop",
			rule("jump DOCKER-USER", counter(), jump("DOCKER-USER")),
			rule("jump DOCKER-ISOLATION-STAGE-1", counter(), jump("DOCKER-ISOLATION-STAGE-1")),
			rule(`oifname "docker0" ct state related,established accept`, oif("docker0"), conntrackXT(2|4), counter(), accept()),
			rule(`oifname "docker0" jump DOCKER`, oif("docker0"), counter(), jump("DOCKER")),
			rule(`iifname "docker0" oifname != "docker0" accept`, iifXT("docker0"), oifNot("docker0"), counter(), accept()),
			rule(`iifname "docker0" oifname "docker0" accept`, iifXT("docker0"), oif("docker0"), counter(), accept())),
	}}
}

// key is a finding as the tests compare it.
func key(f Finding) string {
	c := "certain"
	if !f.Certain {
		c = "maybe"
	}
	if f.Unknown {
		c = "unknown"
	}
	return f.IntentID + " | " + f.Table + " " + f.Chain + " | " + f.By + " | " + c
}

func TestAnalyze(t *testing.T) {
	site, fw := labSite()
	intents := Intents(site, fw)
	allow := func(in, out string) Rule {
		return rule("allow "+in+" "+out, iifXT(in), x{&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: append([]byte(out), 0)}}, accept())
	}
	back := func(in, out string) Rule {
		return rule("back "+in+" "+out, iifXT(in), oif(out), conntrackXT(2|4), accept())
	}
	for _, c := range []struct {
		name   string
		tables []Table
		want   []string
	}{
		{"nothing else", nil, nil},
		{"Docker: the LAN and the IPv4 forwards meet FORWARD's policy, both ways; IPv6 is not Docker's",
			[]Table{dockerFilter()},
			[]string{
				"lan-isp1 | ip filter FORWARD | policy drop | certain",
				"lan-isp2 | ip filter FORWARD | policy drop | certain",
				"forward-tcp-8080-isp1 | ip filter FORWARD | policy drop | certain",
				"forward-tcp-8080-isp2 | ip filter FORWARD | policy drop | certain",
			}},
		{"Docker with the fix for wan2 only",
			[]Table{dockerFilter(allow("lan0", "wan2"), back("wan2", "lan0"))},
			[]string{
				"lan-isp1 | ip filter FORWARD | policy drop | certain",
				"forward-tcp-8080-isp1 | ip filter FORWARD | policy drop | certain",
				// The forward's first packet comes in on wan2: not fixed.
				"forward-tcp-8080-isp2 | ip filter FORWARD | policy drop | certain",
			}},
		{"Docker with the fixes for everything",
			[]Table{dockerFilter(allow("lan0", "wan1"), back("wan1", "lan0"), allow("lan0", "wan2"), back("wan2", "lan0"),
				rule("forwards", ctStatusDNAT(), accept()))},
			nil},
		{"a chain that drops on an interface braid does not use",
			[]Table{{Family: FamilyINet, Name: "other", Chains: []Chain{
				base("forward", HookForward, 0, "accept", rule(`iifname "eth9" drop`, iif("eth9"), drop())),
				base("input", HookInput, 0, "accept", rule(`iifname "eth9" drop`, iif("eth9"), drop())),
			}}},
			nil},
		{"an accept in one table does not outvote another table's drop",
			[]Table{
				{Family: FamilyINet, Name: "a", Chains: []Chain{base("fwd", HookForward, -10, "accept", rule("accept", accept()))}},
				{Family: FamilyINet, Name: "b", Chains: []Chain{base("fwd", HookForward, 10, "accept", rule(`oifname "wan1" drop`, oif("wan1"), drop()))}},
			},
			[]string{
				`lan-isp1 | inet b fwd | rule "oifname \"wan1\" drop" (handle 0) drops | certain`,
				// The forward's replies leave by wan1.
				`forward-tcp-8080-isp1 | inet b fwd | rule "oifname \"wan1\" drop" (handle 0) drops | certain`,
			}},
		{"a jump to a chain that returns, then the policy",
			[]Table{{Family: FamilyIPv6, Name: "f", Chains: []Chain{
				regular("c", rule("return", ret()), rule("accept", accept())),
				base("input", HookInput, 0, "drop", rule("jump c", jump("c")), rule("established", ctState(CtEstablished|CtRelated), accept()),
					rule("icmpv6", l4(ProtoICMPv6), accept()), rule("lan", iif("lan0"), accept()), rule("2222", dport(ProtoTCP, 2222), accept())),
			}}},
			nil},
		{"a goto: the chain's end is the base chain's policy",
			[]Table{{Family: FamilyINet, Name: "f", Chains: []Chain{
				regular("c", rule(`iifname "lan0" accept`, iif("lan0"), accept())),
				base("forward", HookForward, 0, "drop", rule("goto c", goTo("c")), rule("never reached", accept())),
			}}},
			[]string{
				"lan-isp1 | inet f forward | policy drop | certain",
				"lan-isp2 | inet f forward | policy drop | certain",
				"forward-tcp-8080-isp1 | inet f forward | policy drop | certain",
				"forward-tcp-8080-isp2 | inet f forward | policy drop | certain",
			}},
		{"a verdict map: replies from wan1 meet its drop, wan2 is in no element",
			[]Table{{Family: FamilyINet, Name: "f", Sets: []Set{{Name: "__map0", KeyLen: 16, Map: true, VerdictMap: true, Elements: []Element{
				{Key: ifname("lan0"), Verdict: &expr.Verdict{Kind: expr.VerdictAccept}},
				{Key: ifname("wan1"), Verdict: &expr.Verdict{Kind: expr.VerdictDrop}},
			}}}, Chains: []Chain{base("forward", HookForward, 0, "accept", rule("iifname vmap", vmapIIF("__map0")))}}},
			[]string{
				`lan-isp1 | inet f forward | rule "iifname vmap" (handle 0) drops | certain`,
				`forward-tcp-8080-isp1 | inet f forward | rule "iifname vmap" (handle 0) drops | certain`,
			}},
		{"an xt match braid does not model is never an accept",
			[]Table{{Family: FamilyIPv4, Name: "filter", Chains: []Chain{
				base("FORWARD", HookForward, 0, "drop", rule("-m foo -j ACCEPT", xtRawMatch("foo", 0, []byte{1, 2}), accept())),
			}}},
			[]string{
				"lan-isp1 | ip filter FORWARD | policy drop | maybe",
				"lan-isp2 | ip filter FORWARD | policy drop | maybe",
				"forward-tcp-8080-isp1 | ip filter FORWARD | policy drop | maybe",
				"forward-tcp-8080-isp2 | ip filter FORWARD | policy drop | maybe",
			}},
		{"an expression braid cannot decode decides unknown",
			[]Table{{Family: FamilyIPv4, Name: "x", Chains: []Chain{
				base("in", HookInput, 0, "accept", rule(`iifname "wan1" [weird]`, iif("wan1"), x{&Opaque{Name: "weird"}})),
			}}},
			[]string{
				`open-tcp-2222-isp1 | ip x in | rule "iifname \"wan1\" [weird]" (handle 0) decides | unknown`,
				`established-isp1 | ip x in | rule "iifname \"wan1\" [weird]" (handle 0) decides | unknown`,
				`icmp-echo-request-isp1 | ip x in | rule "iifname \"wan1\" [weird]" (handle 0) decides | unknown`,
			}},
		{"a match on part of the LAN holds for some of its hosts only",
			[]Table{{Family: FamilyIPv4, Name: "h", Chains: []Chain{
				base("forward", HookForward, 0, "drop", rule("established", ctState(CtEstablished|CtRelated), accept()),
					rule("ip saddr 192.168.50.0/25 accept", saddr4("192.168.50.0/25"), accept()),
					rule("ct status dnat accept", ctStatusDNAT(), accept())),
			}}},
			[]string{
				"lan-isp1 | ip h forward | policy drop | maybe",
				"lan-isp2 | ip h forward | policy drop | maybe",
			}},
		{"the whole LAN prefix: IPv4 passes",
			[]Table{{Family: FamilyIPv4, Name: "h", Chains: []Chain{
				base("forward", HookForward, 0, "drop", rule("established", ctState(CtEstablished|CtRelated), accept()),
					rule("ip saddr 192.168.50.0/24 accept", saddr4("192.168.50.0/24"), accept()),
					rule("ct status dnat accept", ctStatusDNAT(), accept())),
			}}},
			nil},
		{"replies alone are no fix: the first packet still meets the policy",
			[]Table{{Family: FamilyIPv6, Name: "h", Chains: []Chain{
				base("forward", HookForward, 0, "drop", rule("established", ctState(CtEstablished|CtRelated), accept())),
			}}},
			[]string{
				"lan-isp1 | ip6 h forward | policy drop | certain",
				"lan-isp2 | ip6 h forward | policy drop | certain",
			}},
		{"the first packet alone is no fix: the replies meet the policy",
			[]Table{{Family: FamilyIPv6, Name: "h", Chains: []Chain{
				base("forward", HookForward, 0, "drop", rule(`iifname "lan0" accept`, iif("lan0"), accept()),
					rule(`iifname "wan1" tcp dport 22 accept`, iif("wan1"), dport(ProtoTCP, 22), accept())),
			}}},
			[]string{
				"lan-isp1 | ip6 h forward | policy drop | certain",
				"lan-isp2 | ip6 h forward | policy drop | certain",
			}},
		{"a nat chain sees first packets only; a rate limit is assumed kept, its excess not",
			[]Table{{Family: FamilyIPv4, Name: "n", Chains: []Chain{
				{Name: "post", Hook: HookPostrouting, Type: "nat", Priority: 100, Policy: "drop",
					Rules: []Rule{rule("limit over", limit(true), accept()), rule("limit", limit(false), accept())}},
				{Name: "pre", Hook: HookPrerouting, Type: "nat", Priority: -100, Policy: "accept",
					Rules: []Rule{rule(`fib daddr type local iifname "wan1" drop`, fibDaddrType(unix.RTN_LOCAL), iif("wan1"), drop())}},
			}}},
			[]string{
				`forward-tcp-8080-isp1 | ip n pre | rule "fib daddr type local iifname \"wan1\" drop" (handle 0) drops | certain`,
				`open-tcp-2222-isp1 | ip n pre | rule "fib daddr type local iifname \"wan1\" drop" (handle 0) drops | certain`,
				`icmp-echo-request-isp1 | ip n pre | rule "fib daddr type local iifname \"wan1\" drop" (handle 0) drops | certain`,
			}},
		{"a jump loop is followed no deeper than the kernel would",
			[]Table{{Family: FamilyIPv4, Name: "l", Chains: []Chain{
				regular("a", rule("jump a", jump("a"))),
				base("forward", HookForward, 0, "accept", rule(`iifname "lan0" jump a`, iif("lan0"), jump("a"))),
			}}},
			[]string{
				`lan-isp1 | ip l forward | rule "jump a" (handle 0) in chain a decides | unknown`,
				`lan-isp2 | ip l forward | rule "jump a" (handle 0) in chain a decides | unknown`,
				// The forwards' replies come from lan0.
				`forward-tcp-8080-isp1 | ip l forward | rule "jump a" (handle 0) in chain a decides | unknown`,
				`forward-tcp-8080-isp2 | ip l forward | rule "jump a" (handle 0) in chain a decides | unknown`,
			}},
		{"a dormant table evaluates nothing",
			[]Table{func() Table { t := dockerFilter(); t.Dormant = true; return t }()},
			nil},
		{"a computation braid cannot decode ends no rule; a load it cannot decode is a maybe",
			[]Table{{Family: FamilyINet, Name: "m", Chains: []Chain{
				base("mangle", HookForward, -150, "accept", rule(`oifname "wan1" [rt] [byteorder] tcp option maxseg size set`, oif("wan1"), x{&Opaque{Name: "rt"}, &Opaque{Name: "byteorder"},
					&expr.Exthdr{Type: 2, Offset: 2, Len: 2, Op: expr.ExthdrOpTcpopt, SourceRegister: 1}})),
				base("forward", HookForward, 0, "accept", rule(`oifname "wan2" [socket] drop`, oif("wan2"), x{&Opaque{Name: "socket"}}, drop())),
			}}},
			[]string{
				"lan-isp2 | inet m forward | rule \"oifname \\\"wan2\\\" [socket] drop\" (handle 0) drops | maybe",
				"forward-tcp-8080-isp2 | inet m forward | rule \"oifname \\\"wan2\\\" [socket] drop\" (handle 0) drops | maybe",
			}},
		{"a reject is a drop",
			[]Table{{Family: FamilyIPv4, Name: "r", Chains: []Chain{
				base("input", HookInput, 0, "accept", rule(`iifname "wan2" tcp dport 2222 reject`, iif("wan2"), dport(ProtoTCP, 2222), reject())),
			}}},
			[]string{`open-tcp-2222-isp2 | ip r input | rule "iifname \"wan2\" tcp dport 2222 reject" (handle 0) rejects | certain`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := []string{}
			for _, f := range Analyze(&Ruleset{Tables: c.tables}, intents, Env{}) {
				got = append(got, key(f))
			}
			want := c.want
			if want == nil {
				want = []string{}
			}
			if !slices.Equal(got, want) {
				t.Errorf("findings:\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
			}
		})
	}
}

// TestAnalyzeDockerReport checks what a Docker finding says: the packets
// both ways, and the DOCKER-USER fix for both directions.
func TestAnalyzeDockerReport(t *testing.T) {
	site, fw := labSite()
	fs := Analyze(&Ruleset{Tables: []Table{dockerFilter()}}, Intents(site, fw), Env{})
	if len(fs) == 0 {
		t.Fatal("no findings")
	}
	f := fs[0]
	if f.What != "forwarded LAN traffic to wan1, and its replies" || f.Firewall != FirewallDocker || f.Hook != HookForward {
		t.Errorf("finding: %+v", f)
	}
	for _, p := range []string{"IPv4 TCP, new, lan0 -> wan1", "IPv4 TCP, reply, wan1 -> lan0", "IPv4 UDP, reply, wan1 -> lan0",
		"IPv4 ICMP echo-request, new, lan0 -> wan1", "IPv4 ICMP destination-unreachable, related, wan1 -> lan0"} {
		if !slices.Contains(f.Packets, p) {
			t.Errorf("packets %q lack %q", f.Packets, p)
		}
	}
	for _, s := range []string{"iptables -I DOCKER-USER -i lan0 -o wan1 -j ACCEPT",
		"iptables -I DOCKER-USER -i wan1 -o lan0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"} {
		if !strings.Contains(f.Fix, s) {
			t.Errorf("fix %q lacks %q", f.Fix, s)
		}
	}
	if !strings.Contains(f.String(), "table ip filter, chain FORWARD (hook forward, priority 0) drops forwarded LAN traffic to wan1, and its replies: policy drop") {
		t.Errorf("text:\n%s", f.String())
	}
}

func TestRecognise(t *testing.T) {
	ufw := Table{Family: FamilyIPv6, Name: "filter", Chains: []Chain{regular("ufw6-user-forward")}}
	for _, c := range []struct {
		t    Table
		want string
	}{
		{dockerFilter(), FirewallDocker},
		{ufw, FirewallUFW},
		{Table{Family: FamilyINet, Name: "fw4"}, FirewallFW4},
		{Table{Family: FamilyINet, Name: "firewalld"}, FirewallFirewalld},
		{Table{Family: FamilyIPv4, Name: "filter", Chains: []Chain{base("FORWARD", HookForward, 0, "drop")}}, FirewallIptables},
		{Table{Family: FamilyINet, Name: "filter", Chains: []Chain{base("forward", HookForward, 0, "drop")}}, FirewallNftables},
	} {
		if got := Recognise(&c.t); got != c.want {
			t.Errorf("%s: %s, want %s", c.t.Label(), got, c.want)
		}
	}
}
