package health

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/braid-router/braid/probe"
)

// A round none of whose probes has a source address of its family is
// Unsent: it never opens a socket, so this needs no namespace.
func TestRoundUnsent(t *testing.T) {
	pr := &probe.Prober{Sources: []netip.Addr{netip.MustParseAddr("2001:db8:101::2")}, RefusedAnswers: true}
	targets := []probe.Target{{Kind: probe.ICMP, Addr: "198.51.100.80"}, {Kind: probe.TCP, Addr: "198.51.100.80:7"}}
	r := round(context.Background(), pr, targets, time.Second)
	if !r.Unsent || r.OK || strings.Count(r.Detail, "no IPv4 source address") != 2 {
		t.Errorf("IPv4 probes from an uplink with only IPv6: %+v", r)
	}
	if r := round(context.Background(), pr, nil, time.Second); r.Unsent || r.OK || r.Detail != "no probes" {
		t.Errorf("no probes: %+v", r)
	}
}
