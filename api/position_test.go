package api

import "testing"

// A parsed document says where each value was written, so that what is
// not an error (an uplink waiting for its link) can still name its line.
func TestDocumentPositions(t *testing.T) {
	src := `apiVersion: braid/v1alpha1
kind: Router
metadata: {name: t}
spec:
  lan: {interface: br-lan, addresses: [10.0.0.1/24]}
  uplinks:
  - name: a
    interface: eth1
    ipv4: {dhcp: {}}
  - name: b
    interface: wwan0
    ipv4: {dhcp: {}}
`
	d, err := Parse("home.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]Position{
		"spec.uplinks[1].interface": {File: "home.yaml", Line: 11, Col: 16},
		"spec.uplinks[1]":           {File: "home.yaml", Line: 10, Col: 5},
		"spec.lan.interface":        {File: "home.yaml", Line: 5, Col: 20},
	} {
		got, ok := d.Position(path)
		if !ok || got != want {
			t.Errorf("Position(%q) = %#v, %v; want %#v", path, got, ok, want)
		}
	}
	if p, _ := d.Position("spec.uplinks[1].interface"); p.String() != "home.yaml:11" {
		t.Errorf("String() = %q, want home.yaml:11", p.String())
	}
	// A default was not written anywhere.
	if p, ok := d.Position("spec.uplinks[1].table"); ok {
		t.Errorf("the defaulted table has a position: %+v", p)
	}
	if got := d.Interfaces(); len(got) != 3 || got[0] != "br-lan" || got[1] != "eth1" || got[2] != "wwan0" {
		t.Errorf("Interfaces() = %v, want [br-lan eth1 wwan0]", got)
	}

	// A document built in Go has no positions.
	built := &Document{APIVersion: APIVersion, Kind: KindRouter, Router: &RouterSpec{Uplinks: []Uplink{{Name: "a", Interface: "eth1"}}}}
	if _, ok := built.Position("spec.uplinks[0].interface"); ok {
		t.Error("a document built in Go has a position")
	}
	if got := built.Interfaces(); len(got) != 1 || got[0] != "eth1" {
		t.Errorf("Interfaces() of a built document = %v", got)
	}
	// A tunnel's TUN link is observed too, after the links braid does
	// not create.
	built.Router.Tunnels = []Tunnel{{Name: "sixpe", Interface: "ppp6"}}
	if got := built.Interfaces(); len(got) != 2 || got[1] != "ppp6" {
		t.Errorf("Interfaces() with a tunnel = %v", got)
	}
	var none *Document
	if _, ok := none.Position("spec"); ok || none.Interfaces() != nil {
		t.Error("a nil document has positions or interfaces")
	}
}
