package reconcile

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	nl "github.com/braid-router/braid/drivers/netlink"
	"github.com/braid-router/braid/reconcile/plan"
)

var update = flag.Bool("update", false, "rewrite golden files")

// secretThing has a secret field, to prove plans redact it.
type secretThing struct{ password string }

func (s secretThing) Address() string { return "session[ppp]" }
func (s secretThing) Fields() []plan.Field {
	return []plan.Field{{Name: "user", Value: "dhcp/203.0.113.7"}, {Name: "password", Value: s.password, Secret: true}}
}

func samplePlan() *Plan {
	old := nl.Route{Table: nl.TableMain, Dst: netip.MustParsePrefix("0.0.0.0/0"), Metric: 10, Gateway: netip.MustParseAddr("10.101.0.1"), Link: "wan1"}
	moved := old
	moved.Gateway, moved.Link = netip.MustParseAddr("10.102.0.1"), "wan2"
	return &Plan{
		Changes: []plan.Change{
			{Action: plan.Create, After: nl.Addr{Link: "wan1", Prefix: netip.MustParsePrefix("10.101.0.2/24")}},
			{Action: plan.Update, Before: old, After: moved},
			{Action: plan.Update, Before: secretThing{"hunter2"}, After: secretThing{"correct horse"}},
			{Action: plan.Delete, Before: nl.Sysctl{Name: "net.ipv4.ip_forward", Value: "1"}},
		},
		Conflicts: []plan.Conflict{{Address: "route[main 0.0.0.0/0 metric 20]", Foreign: "via=192.0.2.1 dev=wan2 proto=dhcp"}},
		Notes: []plan.Note{
			{Section: "firewall", Message: "validated, but not converged by this version of braid"},
			{Section: "uplinks[1]", Message: "waiting: link wan9 (home.yaml:23): uplink lte is configured when the link appears", Waiting: true},
		},
		Warnings: []plan.Warning{{Kind: plan.WarnForeignDrop, Key: "lan-isp1|ip filter FORWARD|policy drop",
			Message: "table ip filter, chain FORWARD (hook forward, priority 0) drops forwarded LAN traffic to wan1, and its replies: policy drop",
			Table:   "ip filter", Chain: "FORWARD", Hook: "forward", Priority: new(int), By: "policy drop",
			IntentID: "lan-isp1", Intent: "forwarded LAN traffic to wan1, and its replies", Certain: true,
			Packets:  []string{"IPv4 TCP, new, lan0 -> wan1", "IPv4 TCP, reply, wan1 -> lan0"},
			Firewall: "Docker", Fix: "iptables -I DOCKER-USER -i lan0 -o wan1 -j ACCEPT; iptables -I DOCKER-USER -i wan1 -o lan0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"}},
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		os.WriteFile(path, got, 0o644)
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func TestPlanText(t *testing.T) {
	var b bytes.Buffer
	if err := samplePlan().WriteText(&b, false); err != nil {
		t.Fatal(err)
	}
	golden(t, "plan.txt", b.Bytes())
	if bytes.Contains(b.Bytes(), []byte("hunter2")) || bytes.Contains(b.Bytes(), []byte("horse")) {
		t.Error("secret in text plan")
	}
	b.Reset()
	samplePlan().WriteText(&b, true)
	if !bytes.Contains(b.Bytes(), []byte("\x1b[32m+\x1b[0m")) {
		t.Error("no colour on a terminal")
	}
	b.Reset()
	(&Plan{}).WriteText(&b, false)
	if got := b.String(); got != "No changes. The live state matches the spec.\n" {
		t.Errorf("empty plan: %q", got)
	}
	// An empty plan never says the spec holds without saying what else
	// on the box defeats it.
	b.Reset()
	(&Plan{Warnings: samplePlan().Warnings}).WriteText(&b, false)
	if got := b.String(); !strings.HasSuffix(got, "No changes. The live state matches the spec, but another firewall on this box drops 1 of the flows it lets through (see above).\n") ||
		!strings.Contains(got, "usual fix (Docker): iptables -I DOCKER-USER") {
		t.Errorf("empty plan with a warning:\n%s", got)
	}
}

func TestPlanJSON(t *testing.T) {
	b, err := json.MarshalIndent(samplePlan().Document("braid-box"), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "plan.json", append(b, '\n'))
	if bytes.Contains(b, []byte("hunter2")) {
		t.Error("secret in JSON plan")
	}
	empty, _ := json.Marshal((&Plan{}).Document("host"))
	if string(empty) != `{"format_version":"1","namespace":"host","changes":[],"conflicts":[],"notes":[],"warnings":[],"run_by_daemon":[],"summary":{"add":0,"change":0,"remove":0}}` {
		t.Errorf("empty plan JSON: %s", empty)
	}
}
