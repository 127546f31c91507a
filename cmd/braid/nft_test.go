package main

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/braid-router/braid/internal/nstest"
)

// firewallSpec is labSpec with management.allow and a firewall section.
const firewallSpec = labSpec + `  management:
    allow: [192.168.50.0/24, 2001:db8:50::/64]
  firewall:
    open: [{port: 2222, proto: tcp}, {port: 53, proto: udp, from: [198.51.100.0/24]}]
    forward:
    - {port: 8080, proto: tcp, to: "192.168.50.10:8080"}
    - {port: 8080, proto: tcp, to: "[2001:db8:50::10]:8080"}
`

// nft runs nft in the box.
func (b *box) nft(args ...string) string {
	b.t.Helper()
	return nstest.In(b.t, b.ns, "nft", args...)
}

// nftTable returns `nft -j list table FAMILY NAME`, or "" when there is no
// such table.
func (b *box) nftTable(family, name string) string {
	b.t.Helper()
	return nstest.NftTable(b.t, b.ns, family, name)
}

// TestNftForeignTablesSurvive: nftables state another program placed before
// braid ran is identical after apply and after destroy, and destroy
// removes braid's table.
func TestNftForeignTablesSurvive(t *testing.T) {
	b := newBox(t)
	foreign := nstest.LoadForeignNftables(t, b.ns)
	before := foreign()
	if before == "" || !strings.Contains(before, `"theirs"`) {
		t.Fatalf("foreign ruleset not loaded:\n%s", before)
	}
	spec := writeSpec(t, firewallSpec)
	b.must(0, "apply", "-f", spec)
	if b.nftTable("inet", "braid") == "" {
		t.Fatal("apply made no table inet braid")
	}
	if got := foreign(); got != before {
		t.Errorf("apply touched foreign tables:\n%s", diffLines(before, got))
	}
	b.must(0, "plan", "-f", spec)
	b.must(0, "destroy", "--yes")
	if got := b.nftTable("inet", "braid"); got != "" {
		t.Errorf("table inet braid survived destroy:\n%s", got)
	}
	if got := foreign(); got != before {
		t.Errorf("destroy touched foreign tables:\n%s", diffLines(before, got))
	}
}

// TestNftNoOpApplyIsSilent: a no-op apply of a spec with a firewall leaves
// `nft monitor` silent, after the monitor has shown our own change.
func TestNftNoOpApplyIsSilent(t *testing.T) {
	b := newBox(t)
	spec := writeSpec(t, firewallSpec)
	b.must(0, "apply", "-f", spec)
	poke, token := nstest.NftMarker(t, b.ns)
	m := nstest.NewMonitor(t, poke, token, "ip", "netns", "exec", b.ns, "nft", "monitor")
	// The monitor sees a change between two marks: it can prove silence.
	mark := m.Mark(t)
	b.nft("add", "table", "inet", "control")
	b.nft("delete", "table", "inet", "control")
	if got := m.Since(t, mark); !strings.Contains(got, "control") {
		t.Fatalf("nft monitor did not see our own change between two marks:\n%s", got)
	}
	mark = m.Mark(t)
	r := b.must(0, "apply", "-f", spec)
	if !strings.Contains(r.stdout, "No changes.") {
		t.Errorf("no-op apply:\n%s", r.stdout)
	}
	b.must(0, "plan", "-f", spec)
	if extra := m.Since(t, mark); extra != "" {
		t.Errorf("a no-op apply wrote to nftables:\n%s", extra)
	}
}

// TestNftPlanNamesTheChangedRule: moving a port forward to another LAN host
// is an update of exactly its rules, shown as nft's text, in the text and
// the JSON plan; the firewall sections are no longer notes.
func TestNftPlanNamesTheChangedRule(t *testing.T) {
	b := newBox(t)
	b.must(0, "apply", "-f", writeSpec(t, firewallSpec))
	changed := writeSpec(t, strings.Replace(firewallSpec, `to: "192.168.50.10:8080"`, `to: "192.168.50.20:80"`, 1))
	r := b.must(2, "plan", "-f", changed)
	var lines []string
	for _, l := range strings.Split(r.stdout, "\n") {
		if regexp.MustCompile(`^  [+~-] `).MatchString(l) {
			lines = append(lines, strings.TrimSpace(l))
		}
	}
	want := []string{
		`~ nft.rule[inet braid prerouting_nat:forward-tcp-8080-isp1]  rule: iifname "wan1" tcp dport 8080 dnat ip to 192.168.50.10:8080 -> iifname "wan1" tcp dport 8080 dnat ip to 192.168.50.20:80`,
		`~ nft.rule[inet braid prerouting_nat:forward-tcp-8080-isp2]  rule: iifname "wan2" tcp dport 8080 dnat ip to 192.168.50.10:8080 -> iifname "wan2" tcp dport 8080 dnat ip to 192.168.50.20:80`,
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("plan:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	if strings.Contains(r.stdout, "* firewall") || strings.Contains(r.stdout, "* management.allow") {
		t.Errorf("the plan still calls the firewall not converged:\n%s", r.stdout)
	}
	r = b.must(2, "plan", "--json", "-f", changed)
	var doc struct {
		Changes []struct {
			Action, Address string
			Before, After   map[string]string
		} `json:"changes"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Changes) != 2 || doc.Changes[0].Action != "update" ||
		doc.Changes[0].After["rule"] != `iifname "wan1" tcp dport 8080 dnat ip to 192.168.50.20:80` {
		t.Errorf("JSON plan: %+v", doc.Changes)
	}
	b.must(0, "apply", "-f", changed)
	if got := b.nft("list", "chain", "inet", "braid", "prerouting_nat"); !strings.Contains(got, `dnat ip to 192.168.50.20:80 comment "forward-tcp-8080-isp1"`) {
		t.Errorf("nft lists:\n%s", got)
	}
	b.must(0, "plan", "-f", changed)
}

// TestNftShowListsTheTable: braid show includes braid's nftables objects.
func TestNftShowListsTheTable(t *testing.T) {
	b := newBox(t)
	b.must(0, "apply", "-f", writeSpec(t, firewallSpec))
	r := b.must(0, "show")
	for _, want := range []string{
		"nft.table[inet braid] state=active",
		"nft.chain[inet braid input] type=filter hook=input priority=filter policy=accept",
		"nft.set[inet braid allow_v4] type=ipv4_addr flags=interval elements=1",
		`nft.rule[inet braid input:drop-isp1] rule=iifname "wan1" counter drop`,
		`nft.rule[inet braid postrouting_nat:masquerade-isp2-192.168.50.0/24] rule=oifname "wan2" ip saddr 192.168.50.0/24 masquerade`,
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("show lacks %q:\n%s", want, r.stdout)
		}
	}
}
