package xtables

import (
	"strings"
	"testing"

	"github.com/braid-router/braid/internal/nstest"
)

// TestRead makes legacy tables with the real iptables-legacy and
// ip6tables-legacy in a throwaway namespace, and reads what they hold.
func TestRead(t *testing.T) {
	nstest.RequireBinary(t, "iptables-legacy")
	nstest.RequireBinary(t, "ip6tables-legacy")
	ns := nstest.New(t)
	nstest.Enter(t, ns)
	got, err := Read()
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range got {
		if tb.Matters() {
			t.Fatalf("a fresh namespace has %s", tb)
		}
	}
	nstest.In(t, ns, "iptables-legacy", "-P", "FORWARD", "DROP")
	nstest.In(t, ns, "iptables-legacy", "-N", "MINE")
	nstest.In(t, ns, "iptables-legacy", "-A", "MINE", "-i", "lan0", "-j", "ACCEPT")
	nstest.In(t, ns, "iptables-legacy", "-A", "FORWARD", "-j", "MINE")
	nstest.In(t, ns, "ip6tables-legacy", "-t", "mangle", "-A", "PREROUTING", "-j", "ACCEPT")
	got, err = Read()
	if err != nil {
		t.Fatal(err)
	}
	var says []string
	for _, tb := range got {
		if tb.Matters() {
			says = append(says, tb.String())
		}
	}
	want := "iptables-legacy table filter: 2 rule(s), FORWARD policy DROP; ip6tables-legacy table mangle: 1 rule(s)"
	if strings.Join(says, "; ") != want {
		t.Errorf("read %q, want %q", strings.Join(says, "; "), want)
	}
}

// FuzzParseEntries feeds the entries parser anything: it must never
// panic.
func FuzzParseEntries(f *testing.F) {
	f.Add(uint32(0x1f), uint32(0), []byte{}, false)
	f.Add(uint32(0x0e), uint32(0), make([]byte, 152), true)
	f.Fuzz(func(t *testing.T, hooks, underflow uint32, b []byte, v6 bool) {
		gi := info{validHooks: hooks, size: uint32(len(b))}
		for i := range gi.underflow {
			gi.underflow[i] = underflow * uint32(i)
		}
		parseEntries(gi, b, v6)
		parseInfo(b)
	})
}
