package lab_test

import (
	"context"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/braid-router/braid/internal/nstest"
	"github.com/braid-router/braid/lab"
	"github.com/braid-router/braid/lab/labtest"
)

// LNSUp builds the LNS's namespace behind isp1 with its link, Kea and the
// routes; the box's side reaches its L2TP port through isp1; a second
// LNSUp refuses; LNSDown removes the namespace and the bridge and may be
// repeated. (The tunnel itself is cmd/braid's TestRunTunnelWithTheTestLNS.)
func TestLNSUpDown(t *testing.T) {
	nstest.RequireBinary(t, "kea-dhcp6")
	l := labtest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := lab.LNSConfig{Secret: lab.LNSDefaultSecret, User: lab.LNSDefaultUser, Password: lab.LNSDefaultPassword}
	if err := l.LNSUp(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if err := l.LNSUp(ctx, cfg); err == nil || !strings.Contains(err.Error(), "up already") {
		t.Errorf("a second LNSUp: %v", err)
	}
	st, err := l.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(st.Namespaces, func(n lab.NamespaceStatus) bool { return n.Role == lab.RoleLNS })
	if i < 0 || !slices.ContainsFunc(st.Namespaces[i].Links, func(ls lab.LinkStatus) bool {
		return ls.Name == lab.LNSLink && ls.Up && slices.Equal(ls.Addrs, []string{"fe80::1/64"})
	}) {
		t.Errorf("status has no LNS namespace with %s up and fe80::1 its only address: %+v", lab.LNSLink, st.Namespaces)
	}
	ls, err := l.LNSStatus()
	if err != nil || !ls.Up || len(ls.Processes) != 2 || !ls.Processes[0].Alive || !ls.Processes[1].Alive {
		t.Errorf("LNS status %+v, %v", ls, err)
	}
	// The routes toward the LNS: the core to isp1, isp1 to the LNS.
	for role, via := range map[lab.Role]string{lab.RoleInet: lab.ISP1UpV6, lab.RoleISP1: lab.LNSAddrV6} {
		out, err := l.Run(ctx, role, "ip", "-6", "route", "show", lab.LNSDelegated)
		if err != nil || !strings.Contains(out, "via "+via) {
			t.Errorf("%s: route to %s: %v %q", role, lab.LNSDelegated, err, out)
		}
	}
	// Its L2TP port answers from the box's side of isp1 (an SCCRQ without
	// an Assigned Tunnel ID gets nothing back, but the port is open: no
	// ICMP port unreachable, so a read times out rather than failing).
	err = l.Do(lab.RoleISP1, func() error {
		c, err := net.Dial("udp4", lab.LNSAddrV4+":1701")
		if err != nil {
			return err
		}
		defer c.Close()
		c.Write([]byte{0xc8, 0x02, 0, 12, 0, 0, 0, 0, 0, 0, 0, 0})
		c.SetReadDeadline(time.Now().Add(time.Second))
		_, err = c.Read(make([]byte, 100))
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			return nil
		}
		return err
	})
	if err != nil {
		t.Errorf("the LNS's port 1701 from isp1: %v", err)
	}
	for range 2 {
		if err := l.LNSDown(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.Run(ctx, lab.RoleISP1, "ip", "link", "show", lab.LNSBridge); err == nil {
		t.Errorf("%s left in isp1", lab.LNSBridge)
	}
	if ls, _ := l.LNSStatus(); ls.Up {
		t.Error("the LNS's namespace is left")
	}
}
