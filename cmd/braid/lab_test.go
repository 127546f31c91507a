package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/braid-router/braid/lab"
	"github.com/braid-router/braid/lab/labtest"
)

// TestLabSpecInTheLab is the demo as a test: specs/lab.yaml applied in a
// lab's box makes the box reach the Internet server out of each uplink,
// steers routes: destinations, and routes the LAN's IPv6 without NAT.
func TestLabSpecInTheLab(t *testing.T) {
	l := labtest.New(t)
	whoami := func(role lab.Role, server, bind string) string {
		t.Helper()
		// An unanswered SYN is the expected result of some checks: keep
		// each one short.
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		got, err := l.Whoami(ctx, role, "tcp", server, bind)
		if err != nil {
			return "error: " + err.Error()
		}
		return got.Addr().String()
	}
	// Before braid, the box reaches nothing.
	if got := whoami(lab.RoleBox, "198.51.100.80:7", ""); !strings.HasPrefix(got, "error") {
		t.Fatalf("the unconfigured box reached the server from %s", got)
	}
	b := labBoxOf(t, l)
	run := func(args ...string) (string, int) {
		r := b.braid(nil, args...)
		return r.stdout + r.stderr, r.code
	}
	if out, code := run("apply", "-f", "../../specs/lab.yaml"); code != 0 {
		t.Fatalf("apply: exit %d\n%s", code, out)
	}
	if out, code := run("plan", "-f", "../../specs/lab.yaml"); code != 0 {
		t.Fatalf("plan after apply: exit %d\n%s", code, out)
	}
	for _, c := range []struct {
		what         string
		role         lab.Role
		server, bind string
		want         string
	}{
		{"wan1 IPv4", lab.RoleBox, "198.51.100.80:7", "10.101.0.2", "10.101.0.2"},
		{"wan2 IPv4", lab.RoleBox, "198.51.100.80:7", "10.102.0.2", "10.102.0.2"},
		{"wan1 IPv6", lab.RoleBox, "[2001:db8:ffff::80]:7", "2001:db8:101::2", "2001:db8:101::2"},
		{"wan2 IPv6", lab.RoleBox, "[2001:db8:ffff::80]:7", "2001:db8:102::2", "2001:db8:102::2"},
		{"default route by priority", lab.RoleBox, "198.51.100.80:7", "", "10.101.0.2"},
		{"default IPv6 route by priority", lab.RoleBox, "[2001:db8:ffff::80]:7", "", "2001:db8:101::2"},
		{"routes: IPv4 destination via isp2", lab.RoleBox, "198.51.100.200:7", "", "10.102.0.2"},
		{"routes: IPv6 destination via isp2", lab.RoleBox, "[2001:db8:ffff:1::80]:7", "", "2001:db8:102::2"},
		{"LAN client over IPv6, routed", lab.RoleLAN, "[2001:db8:ffff::80]:7", "", "2001:db8:50::10"},
	} {
		if got := whoami(c.role, c.server, c.bind); got != c.want {
			t.Errorf("%s: server saw %s, want %s", c.what, got, c.want)
		}
	}
	// The ISP never routes the LAN's private prefix: the LAN reaches the
	// server over IPv4 through the box's NAT (nft_lab_test.go has more).
	if got := whoami(lab.RoleLAN, "198.51.100.80:7", ""); got != "10.101.0.2" {
		t.Errorf("the LAN reached the server over IPv4 from %s, want the box's NAT address 10.101.0.2", got)
	}
	// A higher priority number moves the default route to isp2.
	moved := strings.NewReplacer("priority: 10", "priority: 30").Replace(readFile(t, "../../specs/lab.yaml"))
	if out, code := run("apply", "-f", writeSpec(t, moved)); code != 0 {
		t.Fatalf("apply: exit %d\n%s", code, out)
	}
	if got := whoami(lab.RoleBox, "198.51.100.80:7", ""); got != "10.102.0.2" {
		t.Errorf("after re-prioritising, the default route left from %s, want 10.102.0.2", got)
	}
	if out, code := run("destroy", "--yes"); code != 0 {
		t.Fatalf("destroy: exit %d\n%s", code, out)
	}
	if got := whoami(lab.RoleBox, "198.51.100.80:7", ""); !strings.HasPrefix(got, "error") {
		t.Errorf("after destroy the box still reached the server from %s", got)
	}
}
