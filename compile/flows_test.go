package compile

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/braid-router/braid/api"
	nft "github.com/braid-router/braid/drivers/nftables"
	"github.com/braid-router/braid/facts"
	"github.com/braid-router/braid/foreignfw"
	"github.com/braid-router/braid/reconcile/plan"
)

// TestIntentsPassBraidsOwnTable runs every intent of every example spec
// through braid's own compiled table, as the analysis runs them through
// another firewall's: braid's table must let each of their packets
// through, both ways. An intent that braid's rules do not accept would
// be a false warning about someone else's firewall; a rule braid adds
// without an intent would go unchecked (the intents' kinds below cover
// every accept rule of the lab's table that lets a flow through).
func TestIntentsPassBraidsOwnTable(t *testing.T) {
	files, err := filepath.Glob("../specs/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	fleet, _ := filepath.Glob("../specs/fleet/boxes/*.yaml")
	for _, file := range append(files, fleet...) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			doc, err := api.Load(file)
			if err != nil {
				t.Fatal(err)
			}
			if doc.Router == nil {
				t.Skip("not a router")
			}
			d, err := Router(doc.Router, facts.Set{})
			if err != nil {
				t.Fatal(err)
			}
			// What a CLI apply converges: the steering into the proxy is
			// the daemon's, and sends LAN TCP to the box, not through it.
			d = d.WithoutProcessBound(nil)
			rs := &foreignfw.Ruleset{Tables: []foreignfw.Table{nft.Model(d.Resources)}}
			if len(d.Intents) == 0 {
				t.Fatal("no intents")
			}
			for _, f := range foreignfw.Analyze(rs, d.Intents, foreignfw.Env{}) {
				t.Errorf("braid's own table: %s\n  because %v\n  packets %v", f.Summary(), f.Because, f.Packets)
			}
		})
	}
}

// TestIntentsOfTheLab lists the lab's intents: each accept rule of
// braid's table that lets a flow through has one per uplink.
func TestIntentsOfTheLab(t *testing.T) {
	d := compileLab(t)
	var got []string
	for _, in := range d.Intents {
		got = append(got, in.ID+": "+in.What)
	}
	want := []string{
		"lan-isp1: forwarded LAN traffic to wan1, and its replies",
		"lan-isp2: forwarded LAN traffic to wan2, and its replies",
		"forward-tcp-8080-isp1: port forward of tcp port 8080 on wan1 to 192.168.50.10:8080, and its replies",
		"forward-tcp-8080-isp2: port forward of tcp port 8080 on wan2 to 192.168.50.10:8080, and its replies",
		"forward-tcp-8080-isp1-v6: IPv6 forward of tcp port 8080 from wan1 to 2001:db8:50::10, and its replies",
		"forward-tcp-8080-isp2-v6: IPv6 forward of tcp port 8080 from wan2 to 2001:db8:50::10, and its replies",
		"open-tcp-2222-isp1: tcp port 2222 of the box, open on wan1, and its replies",
		"open-tcp-2222-isp2: tcp port 2222 of the box, open on wan2, and its replies",
		"lan: traffic from the LAN (lan0) to the box, and its replies",
		"established-isp1: the box's own connections out of wan1 (DHCP, probes, name lookups, the peer), and their replies",
		"icmp-echo-request-isp1: ping to the box on wan1, and its replies",
		"icmpv6-nd-isp1: IPv6 neighbour discovery on wan1",
		"established-isp2: the box's own connections out of wan2 (DHCP, probes, name lookups, the peer), and their replies",
		"icmp-echo-request-isp2: ping to the box on wan2, and its replies",
		"icmpv6-nd-isp2: IPv6 neighbour discovery on wan2",
	}
	if len(got) != len(want) {
		t.Fatalf("intents:\n%q\nwant\n%q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("intent %d: %q, want %q", i, got[i], want[i])
		}
	}
}

// TestIntentsNeedBraidsRules takes accept rules out of braid's table:
// the intents they are for must then be found dropped (by braid's own
// drop rules for what comes in on an uplink), so the test above would
// fail if an intent stopped matching its rule.
func TestIntentsNeedBraidsRules(t *testing.T) {
	d := compileLab(t).WithoutProcessBound(nil)
	for _, c := range []struct {
		without string // a rule's address
		want    string // an intent that must be found dropped
	}{
		{"nft.rule[inet braid forward:established]", "lan-isp1"},
		{"nft.rule[inet braid forward:dnat]", "forward-tcp-8080-isp2"},
		{"nft.rule[inet braid input:open-tcp-2222-isp1]", "open-tcp-2222-isp1"},
		{"nft.rule[inet braid input:established]", "established-isp2"},
		{"nft.rule[inet braid input:icmpv6-nd-neighbor-advert]", "icmpv6-nd-isp1"},
	} {
		var kept []plan.Resource
		found := false
		for _, r := range d.Resources {
			if r.Address() == c.without {
				found = true
				continue
			}
			kept = append(kept, r)
		}
		if !found {
			t.Fatalf("no %s", c.without)
		}
		rs := &foreignfw.Ruleset{Tables: []foreignfw.Table{nft.Model(kept)}}
		var ids []string
		for _, f := range foreignfw.Analyze(rs, d.Intents, foreignfw.Env{}) {
			ids = append(ids, f.IntentID)
		}
		if !slices.Contains(ids, c.want) {
			t.Errorf("without %s: dropped %v, want %s among them", c.without, ids, c.want)
		}
	}
}
