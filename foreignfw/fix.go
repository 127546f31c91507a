package foreignfw

import (
	"fmt"
	"net/netip"
	"strings"
)

// Firewalls braid recognises by their tables and chains.
const (
	FirewallDocker    = "Docker"
	FirewallUFW       = "ufw"
	FirewallFW4       = "OpenWrt fw4"
	FirewallFirewalld = "firewalld"
	FirewallIptables  = "iptables-nft"
	FirewallNftables  = "nftables"
)

// Recognise names the program a table belongs to, by the names it uses.
func Recognise(t *Table) string {
	has := func(prefix string) bool {
		for _, c := range t.Chains {
			if strings.HasPrefix(c.Name, prefix) {
				return true
			}
		}
		return false
	}
	switch {
	case t.Family == FamilyINet && t.Name == "fw4":
		return FirewallFW4
	case t.Family == FamilyINet && t.Name == "firewalld":
		return FirewallFirewalld
	case t.Family != FamilyINet && has("DOCKER-USER"):
		return FirewallDocker
	case t.Family != FamilyINet && (has("ufw-") || has("ufw6-")):
		return FirewallUFW
	case (t.Family == FamilyIPv4 || t.Family == FamilyIPv6) && (has("INPUT") || has("FORWARD") || has("OUTPUT")):
		return FirewallIptables
	}
	return FirewallNftables
}

// clause is one accept a fix adds: where (the hook of the packets it
// lets through), as an nft match and as iptables arguments.
type clause struct {
	hook string
	nft  string
	ipt  string
}

// clauses are the accepts that let an intent through, for a family.
func clauses(in *Intent, v6 bool) []clause {
	ip, icmp := "ip", "icmp"
	if v6 {
		ip, icmp = "ip6", "icmpv6"
	}
	from := ""
	ifrom := ""
	for _, p := range in.From {
		if p.Addr().Is6() == v6 {
			from, ifrom = fmt.Sprintf(" %s saddr %s", ip, p), " -s "+p.String()
			break
		}
	}
	established := func(hook, iif, oif string) clause {
		var n, i []string
		if iif != "" {
			n, i = append(n, fmt.Sprintf("iifname %q", iif)), append(i, "-i "+iif)
		}
		if oif != "" {
			n, i = append(n, fmt.Sprintf("oifname %q", oif)), append(i, "-o "+oif)
		}
		n = append(n, "ct state established,related accept")
		i = append(i, "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT")
		return clause{hook, strings.Join(n, " "), strings.Join(i, " ")}
	}
	switch in.Kind {
	case KindLANOut:
		return []clause{
			{HookForward, fmt.Sprintf("iifname %q oifname %q accept", in.In, in.Out), fmt.Sprintf("-i %s -o %s -j ACCEPT", in.In, in.Out)},
			established(HookForward, in.Out, in.In),
		}
	case KindPortForward, KindForward6:
		to := in.To.Addr()
		return []clause{
			{HookForward, fmt.Sprintf("iifname %q oifname %q%s %s daddr %s %s dport %d accept", in.In, in.Out, from, ip, to, in.Proto, in.To.Port()),
				fmt.Sprintf("-i %s -o %s%s -d %s -p %s --dport %d -j ACCEPT", in.In, in.Out, ifrom, to, in.Proto, in.To.Port())},
			established(HookForward, in.Out, in.In),
		}
	case KindOpen:
		return []clause{
			{HookInput, fmt.Sprintf("iifname %q%s %s dport %d accept", in.In, from, in.Proto, in.Port),
				fmt.Sprintf("-i %s%s -p %s --dport %d -j ACCEPT", in.In, ifrom, in.Proto, in.Port)},
			established(HookOutput, "", in.In),
		}
	case KindLANIn:
		return []clause{
			{HookInput, fmt.Sprintf("iifname %q accept", in.In), fmt.Sprintf("-i %s -j ACCEPT", in.In)},
			established(HookOutput, "", in.In),
		}
	case KindManagement:
		return []clause{
			{HookInput, fmt.Sprintf("iifname %q%s accept", in.In, from), fmt.Sprintf("-i %s%s -j ACCEPT", in.In, ifrom)},
			established(HookOutput, "", in.In),
		}
	case KindOwn:
		return []clause{
			{HookOutput, fmt.Sprintf("oifname %q accept", in.Out), fmt.Sprintf("-o %s -j ACCEPT", in.Out)},
			established(HookInput, in.Out, ""),
		}
	case KindPing:
		return []clause{
			{HookInput, fmt.Sprintf("iifname %q %s type echo-request accept", in.In, icmp),
				fmt.Sprintf("-i %s -p %s --%s-type echo-request -j ACCEPT", in.In, icmp, icmp)},
			established(HookOutput, "", in.In),
		}
	case KindND:
		return []clause{
			{HookInput, fmt.Sprintf("iifname %q icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert } accept", in.In),
				fmt.Sprintf("-i %s -p icmpv6 -m icmp6 --icmpv6-type neighbour-solicitation -j ACCEPT (and neighbour-advertisement, router-advertisement)", in.In)},
			{HookOutput, fmt.Sprintf("oifname %q icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept", in.Out),
				fmt.Sprintf("-o %s -p icmpv6 -m icmp6 --icmpv6-type neighbour-solicitation -j ACCEPT (and neighbour-advertisement)", in.Out)},
		}
	}
	return nil
}

// forHook keeps the clauses for a hook (all of them for a hook none is
// for: the prerouting and postrouting chains see both directions).
func forHook(cs []clause, hook string) []clause {
	var out []clause
	for _, c := range cs {
		if c.hook == hook {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return cs
	}
	return out
}

// fix is the usual fix for a drop by a chain of a table, for an intent:
// which firewall that is, and what to tell it.
func fix(t *Table, base *Chain, in *Intent) (string, string) {
	fw := Recognise(t)
	v6 := t.Family == FamilyIPv6 || (t.Family == FamilyINet && intentV6Only(in))
	cs := forHook(clauses(in, v6), base.Hook)
	var lines []string
	switch fw {
	case FirewallDocker:
		cmd := "iptables"
		if t.Family == FamilyIPv6 {
			cmd = "ip6tables"
		}
		chain := "DOCKER-USER"
		if base.Hook != HookForward {
			chain = base.Name
		}
		for _, c := range cs {
			lines = append(lines, fmt.Sprintf("%s -I %s %s", cmd, chain, c.ipt))
		}
		if base.Hook == HookForward {
			lines = append(lines, "(Docker keeps DOCKER-USER for your rules, both directions; add them again at every boot, before or after dockerd)")
		}
	case FirewallUFW:
		lines = ufwFix(in)
	case FirewallFW4:
		lines = fw4Fix(in)
	case FirewallFirewalld:
		lines = []string{fmt.Sprintf("put %s and %s in firewalld zones with a policy from the one to the other (firewall-cmd --new-policy), or give braid's interfaces to the trusted zone", nonEmpty2(in.In, "the box"), nonEmpty2(in.Out, "the box"))}
	case FirewallIptables:
		cmd := "iptables"
		if t.Family == FamilyIPv6 {
			cmd = "ip6tables"
		}
		table := ""
		if t.Name != "filter" {
			table = " -t " + t.Name
		}
		for _, c := range cs {
			lines = append(lines, fmt.Sprintf("%s%s -I %s %s", cmd, table, base.Name, c.ipt))
		}
	default:
		for _, c := range cs {
			lines = append(lines, fmt.Sprintf("nft insert rule %s %s %s", t.Label(), base.Name, c.nft))
		}
		lines = append(lines, "(and the same in the file that loads this ruleset at boot)")
	}
	return fw, strings.Join(lines, "; ")
}

func nonEmpty2(s, or string) string {
	if s == "" {
		return or
	}
	return s
}

// intentV6Only reports whether every packet of the intent is IPv6.
func intentV6Only(in *Intent) bool {
	if len(in.Packets) == 0 {
		return false
	}
	for _, p := range in.Packets {
		if !p.IPv6 {
			return false
		}
	}
	return true
}

// ufwFix is ufw's command for an intent (its before rules already let
// replies, ping and neighbour discovery through).
func ufwFix(in *Intent) []string {
	from := "any"
	if len(in.From) > 0 {
		from = in.From[0].String()
	}
	switch in.Kind {
	case KindLANOut:
		return []string{fmt.Sprintf("ufw route allow in on %s out on %s", in.In, in.Out)}
	case KindPortForward, KindForward6:
		return []string{fmt.Sprintf("ufw route allow in on %s out on %s from %s to %s port %d proto %s", in.In, in.Out, from, in.To.Addr(), in.To.Port(), in.Proto)}
	case KindOpen:
		return []string{fmt.Sprintf("ufw allow in on %s from %s to any port %d proto %s", in.In, from, in.Port, in.Proto)}
	case KindLANIn:
		return []string{fmt.Sprintf("ufw allow in on %s", in.In)}
	case KindManagement:
		return []string{fmt.Sprintf("ufw allow in on %s from %s", in.In, from)}
	case KindOwn:
		return []string{fmt.Sprintf("ufw allow out on %s", in.Out)}
	}
	return []string{"ufw's before rules (/etc/ufw/before.rules, before6.rules) let this through by default: put their ICMP rules back"}
}

// fw4Fix is what to write in OpenWrt's /etc/config/firewall (then
// `service firewall reload`).
func fw4Fix(in *Intent) []string {
	zone := func(dev string) string { return fmt.Sprintf("the zone of %s", dev) }
	switch in.Kind {
	case KindLANOut:
		return []string{fmt.Sprintf("in /etc/config/firewall, list %s in a zone (list device '%s' in zone wan, or a zone of its own, masq off since braid NATs) and add a forwarding from the LAN's zone to it (config forwarding: option src 'lan', option dest 'wan'); then service firewall reload", in.Out, in.Out)}
	case KindPortForward, KindForward6:
		return []string{fmt.Sprintf("in /etc/config/firewall, config rule: option src '<%s>', option dest 'lan', option proto '%s', option dest_ip '%s', option dest_port '%d', option target 'ACCEPT' (braid does the DNAT itself); then service firewall reload", zone(in.In), in.Proto, in.To.Addr(), in.To.Port())}
	case KindOpen:
		return []string{fmt.Sprintf("in /etc/config/firewall, config rule: option src '<%s>', option proto '%s', option dest_port '%d', option target 'ACCEPT'; then service firewall reload", zone(in.In), in.Proto, in.Port)}
	case KindLANIn:
		return []string{fmt.Sprintf("in /etc/config/firewall, option input 'ACCEPT' on %s", zone(in.In))}
	case KindManagement:
		return []string{fmt.Sprintf("in /etc/config/firewall, config rule: option src '<%s>', option src_ip '%s', option target 'ACCEPT'", zone(in.In), prefixList(in.From))}
	case KindOwn:
		return []string{fmt.Sprintf("in /etc/config/firewall, option output 'ACCEPT' on %s", zone(in.Out))}
	}
	return []string{"fw4's default rules (Allow-Ping, Allow-ICMPv6-Input) let this through: put them back in /etc/config/firewall"}
}

func prefixList(ps []netip.Prefix) string {
	var ss []string
	for _, p := range ps {
		ss = append(ss, p.String())
	}
	return strings.Join(ss, " ")
}
