package main

import (
	"context"
	"os/exec"
	"strings"
	"testing"

	"github.com/braid-router/braid/lab"
)

// TestMarkSteersToItsUplink: an address in an uplink's egress set is
// marked by braid's nftables rule and routed by the fwmark rule to that
// uplink's table, in both families: the mechanism per-domain egress uses.
func TestMarkSteersToItsUplink(t *testing.T) {
	b := newLabBox(t)
	b.braidOK("apply", "-f", "../../specs/lab.yaml")
	box := b.l.NS(lab.RoleBox)
	if out := b.boxIP("-4", "rule", "show", "pref", "7050"); !strings.Contains(out, "fwmark 0x1bbe lookup 7102 proto 98") {
		t.Fatalf("no fwmark rule for isp2:\n%s", out)
	}
	if got := b.whoami(lab.RoleLAN, "tcp", "198.51.100.80:7"); got != lab.BoxWAN1V4 {
		t.Fatalf("before marking, the LAN left by %s, want isp1 (%s)", got, lab.BoxWAN1V4)
	}
	if got := b.whoami(lab.RoleLAN, "tcp", "[2001:db8:ffff::80]:7"); got != lab.LANClientV6 {
		t.Fatalf("IPv6 before marking: %s", got)
	}
	for _, cmd := range [][]string{
		{"nft", "add", "element", "inet", "braid", "egress_isp2_v4", "{ 198.51.100.80 }"},
		{"nft", "add", "element", "inet", "braid", "egress_isp2_v6", "{ 2001:db8:ffff::80 }"},
	} {
		if out, err := exec.Command("ip", append([]string{"netns", "exec", box}, cmd...)...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v %s", cmd, err, out)
		}
	}
	if got := b.whoami(lab.RoleLAN, "tcp", "198.51.100.80:7"); got != lab.BoxWAN2V4 {
		t.Errorf("a marked IPv4 destination left by %s, want isp2 (%s)", got, lab.BoxWAN2V4)
	}
	// IPv6 is not NATed: prove the path from the ISP's counters instead.
	before := b.txPackets(lab.RoleBox, lab.BoxWAN2Dev)
	if got := b.whoami(lab.RoleLAN, "tcp", "[2001:db8:ffff::80]:7"); got != lab.LANClientV6 {
		t.Errorf("a marked IPv6 destination: %s", got)
	}
	if after := b.txPackets(lab.RoleBox, lab.BoxWAN2Dev); after-before < 3 {
		t.Errorf("a marked IPv6 connection sent %d packets on wan2", after-before)
	}
	// The egress sets' elements are a session's (the DNS forwarder's),
	// not drift from the spec: the plan leaves them alone.
	out, _ := exec.Command(braidBin, "--netns", box, "plan", "-f", "../../specs/lab.yaml").CombinedOutput()
	if strings.Contains(string(out), "egress_isp2_v4") {
		t.Errorf("plan shows the egress set whose elements a session owns:\n%s", out)
	}
}

// boxIP runs ip in the lab's box.
func (b *labBox) boxIP(args ...string) string {
	b.t.Helper()
	out, err := b.l.Run(context.Background(), lab.RoleBox, "ip", args...)
	if err != nil {
		b.t.Fatalf("ip %v: %v", args, err)
	}
	return out
}
