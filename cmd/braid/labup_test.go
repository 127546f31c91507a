package main

import (
	"strings"
	"testing"

	"github.com/braid-router/braid/lab"
)

func TestLabTopologyRates(t *testing.T) {
	if topo, err := labTopology(nil); err != nil || topo != nil {
		t.Errorf("labTopology(nil) = %v, %v; want the default (nil)", topo, err)
	}
	topo, err := labTopology([]string{"isp1=30M", "isp2=20000k"})
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range topo.Namespaces {
		want := map[lab.Role]uint64{lab.RoleISP1: 30_000_000, lab.RoleISP2: 20_000_000}[ns.Role]
		for _, q := range ns.Qdiscs {
			if q.Rate != want {
				t.Errorf("%s %s: rate %d, want %d", ns.Role, q.Dev, q.Rate, want)
			}
		}
	}
	for _, bad := range []string{"isp1", "isp1=fast", "isp1=0", "inet=10M"} {
		if _, err := labTopology([]string{bad}); err == nil || !strings.Contains(err.Error(), "--rate") {
			t.Errorf("labTopology(%q) = %v, want an error about --rate", bad, err)
		}
	}
}
