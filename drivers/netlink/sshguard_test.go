package netlink

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/braid-router/braid/reconcile/plan"
)

func TestSSHFromEnv(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	s, ok := SSHFromEnv(env(map[string]string{"SSH_CONNECTION": "192.168.50.10 51000 192.168.50.1 22"}))
	if !ok || s.Client != netip.MustParseAddr("192.168.50.10") || s.Server != netip.MustParseAddr("192.168.50.1") {
		t.Errorf("SSH_CONNECTION: %v %v", s, ok)
	}
	s, ok = SSHFromEnv(env(map[string]string{"SSH_CLIENT": "2001:db8:50::10 51000 22"}))
	if !ok || s.Client != netip.MustParseAddr("2001:db8:50::10") || s.Server.IsValid() {
		t.Errorf("SSH_CLIENT: %v %v", s, ok)
	}
	if _, ok := SSHFromEnv(env(nil)); ok {
		t.Error("no SSH variables: not an SSH session")
	}
}

func TestCutsSSH(t *testing.T) {
	sess := SSHSession{Client: netip.MustParseAddr("192.168.50.10"), Server: netip.MustParseAddr("192.168.50.1")}
	path := Path{Link: "lan0"}
	lanAddr := Addr{Link: "lan0", Prefix: netip.MustParsePrefix("192.168.50.1/24")}
	lanRoute := Route{Table: TableMain, Dst: netip.MustParsePrefix("192.168.50.0/24"), Link: "lan0", Src: netip.MustParseAddr("192.168.50.1")}
	movedRoute := lanRoute
	movedRoute.Link = "lan1"
	tests := []struct {
		name   string
		change plan.Change
		cut    string
	}{
		{"removing the session's address", plan.Change{Action: plan.Delete, Before: lanAddr}, "removes the address"},
		{"taking its link down", plan.Change{Action: plan.Update, Before: Link{Name: "lan0", Up: true}, After: Link{Name: "lan0"}}, "may take down lan0"},
		{"restoring its link's previous state", plan.Change{Action: plan.Delete, Before: Link{Name: "lan0", Up: true}}, "may take down lan0"},
		{"changing its link's MAC address", plan.Change{Action: plan.Update, Before: Link{Name: "lan0", Up: true, MAC: "02:00:00:00:00:01"}, After: Link{Name: "lan0", Up: true, MAC: "02:00:00:00:00:02"}}, "changes the MAC address of lan0"},
		{"removing the route to the client", plan.Change{Action: plan.Delete, Before: lanRoute}, "re-routes"},
		{"moving the route to another link", plan.Change{Action: plan.Update, Before: lanRoute, After: movedRoute}, "re-routes"},
		{"adding an address", plan.Change{Action: plan.Create, After: lanAddr}, ""},
		{"another link down", plan.Change{Action: plan.Update, Before: Link{Name: "wan1", Up: true}, After: Link{Name: "wan1"}}, ""},
		{"changing the MTU only", plan.Change{Action: plan.Update, Before: Link{Name: "lan0", Up: true}, After: Link{Name: "lan0", Up: true, MTU: 1400}}, ""},
		{"another link's MAC address", plan.Change{Action: plan.Update, Before: Link{Name: "wan1", Up: true}, After: Link{Name: "wan1", Up: true, MAC: "02:00:00:00:00:02"}}, ""},
		{"its link's MAC address as it is", plan.Change{Action: plan.Update, Before: Link{Name: "lan0", MAC: "02:00:00:00:00:01"}, After: Link{Name: "lan0", Up: true, MAC: "02:00:00:00:00:01"}}, ""},
		{"a route that does not cover the client", plan.Change{Action: plan.Delete, Before: Route{Table: TableMain, Dst: netip.MustParsePrefix("10.0.0.0/8"), Link: "lan0"}}, ""},
		{"a route's source only", plan.Change{Action: plan.Update, Before: lanRoute, After: Route{Table: TableMain, Dst: lanRoute.Dst, Link: "lan0"}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			why := CutsSSH([]plan.Change{tt.change}, sess, path)
			if tt.cut == "" && why != "" {
				t.Errorf("refused: %s", why)
			}
			if tt.cut != "" && !strings.Contains(why, tt.cut) {
				t.Errorf("why = %q, want %q", why, tt.cut)
			}
		})
	}
}
