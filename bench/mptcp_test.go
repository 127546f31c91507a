package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/braid-router/braid/api"
	"github.com/braid-router/braid/compile"
	"github.com/braid-router/braid/drivers/mptcp"
	"github.com/braid-router/braid/facts"
	"github.com/braid-router/braid/reconcile"
)

// The MPTCP measurement's spec wants the kernel's maximum of eight
// endpoints; its base spec, with every uplink off, none; and the mirror
// of the difference is eight endpoint adds and one limits line.
func TestMPTCPSpec(t *testing.T) {
	compileSpec := func(off bool) reconcile.Desired {
		t.Helper()
		var b bytes.Buffer
		if err := writeMPTCPSpec(&b, off); err != nil {
			t.Fatal(err)
		}
		doc, err := api.Parse("mptcp.yaml", b.Bytes())
		if err != nil {
			t.Fatalf("generated spec is invalid: %v", err)
		}
		d, err := compile.Compile(doc, facts.Set{})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	count := func(d reconcile.Desired) (eps, limits int) {
		for _, r := range d.Resources {
			switch r.(type) {
			case mptcp.Endpoint:
				eps++
			case mptcp.Limits:
				limits++
			}
		}
		return eps, limits
	}
	if eps, limits := count(compileSpec(false)); eps != mptcp.MaxEndpoints || limits != 1 {
		t.Errorf("MPTCP spec: %d endpoints and %d limits, want %d and 1", eps, limits, mptcp.MaxEndpoints)
	}
	if eps, limits := count(compileSpec(true)); eps != 0 || limits != 0 {
		t.Errorf("base spec: %d endpoints and %d limits, want none", eps, limits)
	}
	// The measurement's plan is the difference from the base spec: the
	// MPTCP resources alone.
	doc := planFromEmpty(compileSpec(false))
	changes := doc.Changes[:0]
	for _, c := range doc.Changes {
		if strings.HasPrefix(c.Address, "mptcp.") {
			changes = append(changes, c)
		}
	}
	doc.Changes = changes
	m, err := mirror(doc)
	if err != nil {
		t.Fatal(err)
	}
	var adds, sets int
	for _, l := range m.Main {
		switch {
		case strings.HasPrefix(l, "mptcp endpoint add "):
			adds++
		case strings.HasPrefix(l, "mptcp limits set "):
			sets++
		}
	}
	if adds != 8 || sets != 1 {
		t.Errorf("mirror: %d endpoint adds and %d limits lines, want 8 and 1", adds, sets)
	}
}
