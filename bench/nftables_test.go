package main

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/braid-router/braid/api"
	"github.com/braid-router/braid/compile"
	nft "github.com/braid-router/braid/drivers/nftables"
	"github.com/braid-router/braid/facts"
	"github.com/braid-router/braid/reconcile/plan"
)

// The nftables measurement's spec compiles to a set of 10,000 elements and
// 1,000 open-port rules, and its changed twin differs in that set only, by
// one element in and one out.
func TestNftSpec(t *testing.T) {
	compile := func(changed bool) map[string]plan.Resource {
		t.Helper()
		var b bytes.Buffer
		if err := writeNftSpec(&b, changed); err != nil {
			t.Fatal(err)
		}
		doc, err := api.Parse("nft.yaml", b.Bytes())
		if err != nil {
			t.Fatalf("generated spec is invalid: %v", err)
		}
		d, err := compile.Compile(doc, facts.Set{})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]plan.Resource{}
		for _, r := range d.Resources {
			out[r.Address()] = r
		}
		return out
	}
	full, changed := compile(false), compile(true)
	set, ok := full["nft.set[inet braid allow_v4]"].(nft.Set)
	if !ok || len(set.Elements) != nftElements {
		t.Fatalf("allow_v4: %v", full["nft.set[inet braid allow_v4]"])
	}
	open := 0
	for addr := range full {
		if strings.HasPrefix(addr, "nft.rule[inet braid input:open-") {
			open++
		}
	}
	if open != 2*nftOpenPorts {
		t.Errorf("%d open-port rules, want %d", open, 2*nftOpenPorts)
	}
	// A set's fields are its element count: compare its elements.
	same := func(a, b plan.Resource) bool {
		if as, ok := a.(nft.Set); ok {
			bs, ok := b.(nft.Set)
			return ok && slices.Equal(as.Elements, bs.Elements)
		}
		return plan.Same(a, b)
	}
	var differ []string
	for addr, r := range full {
		if c, ok := changed[addr]; !ok || !same(c, r) {
			differ = append(differ, addr)
		}
	}
	if len(differ) != 1 || differ[0] != "nft.set[inet braid allow_v4]" || len(changed) != len(full) {
		t.Errorf("the changed spec differs in %q", differ)
	}
}
