package compile

import (
	"reflect"
	"testing"

	"github.com/braid-router/braid/api"
	"github.com/braid-router/braid/drivers/mptcp"
	nl "github.com/braid-router/braid/drivers/netlink"
	"github.com/braid-router/braid/facts"
	"github.com/braid-router/braid/reconcile/plan"
	"github.com/braid-router/braid/sessions/peer"
)

func compilePeer(t *testing.T, src string) (sessions []peer.Config, res []plan.Resource, notes []plan.Note) {
	t.Helper()
	doc, err := api.Parse("peer.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	d, err := Compile(doc, facts.Set{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range d.Sessions {
		if s.Kind != peer.Kind || s.Name != peer.Name {
			t.Fatalf("unexpected session %s", s.Address())
		}
		sessions = append(sessions, s.Config.(peer.Config))
	}
	return sessions, d.Resources, d.Notes
}

// A peer spec compiles to its session, with the spec's listen, cipher
// (the default when unset), key and allowLocal, and to the MPTCP limits
// and sysctls that let it accept a subflow per box uplink.
func TestPeerCompiles(t *testing.T) {
	cfgs, res, notes := compilePeer(t, `apiVersion: braid/v1alpha1
kind: Peer
metadata: {name: vps}
spec:
  listen: "[::]:65101"
  key: {env: PEER_KEY}
  allowLocal: ["127.0.0.1:53"]
`)
	want := peer.Config{Listen: "[::]:65101", Cipher: "chacha20-ietf-poly1305", Key: &api.Secret{Env: "PEER_KEY"}, AllowLocal: []string{"127.0.0.1:53"}}
	if len(cfgs) != 1 || !reflect.DeepEqual(cfgs[0], want) {
		t.Fatalf("sessions = %+v, want %+v", cfgs, want)
	}
	wantRes := []plan.Resource{
		nl.Sysctl{Name: "net.mptcp.enabled", Value: "1"},
		nl.Sysctl{Name: "net.mptcp.pm_type", Value: "0"},
		mptcp.Limits{Subflows: 8, AddAddrAccepted: 0},
	}
	if !reflect.DeepEqual(res, wantRes) {
		t.Fatalf("resources = %v, want %v", res, wantRes)
	}
	if len(notes) != 0 {
		t.Fatalf("notes = %v, want none without management", notes)
	}
	// The key shows as its reference in plans.
	for _, f := range cfgs[0].Fields() {
		if f.Name == "key" && f.Value != "env:PEER_KEY" {
			t.Fatalf("key field = %q", f.Value)
		}
	}
}

func TestPeerNotesWhatIsNotConverged(t *testing.T) {
	cfgs, _, notes := compilePeer(t, `apiVersion: braid/v1alpha1
kind: Peer
metadata: {name: vps}
spec:
  cipher: aes-128-gcm
  key: {value: x}
  management: {allow: [198.51.100.0/24]}
`)
	if len(cfgs) != 0 {
		t.Fatalf("a peer without listen runs %+v", cfgs)
	}
	sections := map[string]bool{}
	for _, n := range notes {
		sections[n.Section] = true
	}
	if !sections["listen"] || !sections["management"] {
		t.Fatalf("notes = %v, want listen and management", notes)
	}
}
