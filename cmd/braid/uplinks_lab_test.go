package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/braid-router/braid/lab"
	"github.com/braid-router/braid/lab/labtest"
	"github.com/braid-router/braid/reconcile"
)

// The uplinks issue's whole story, on the lab, with specs/lab-uplinks.yaml
// and the real sessions: braid run brings isp1 up from the ONT's DHCP
// server with SFR's vendor class, learns IPv6 on isp2 from its adverts,
// tracks both, moves the LAN's traffic off isp1 when it stops answering
// and back when it heals, and the same for isp2.
func TestRunUplinksComeAlive(t *testing.T) {
	l := labtest.New(t)
	b := labBoxOf(t, l)
	d := b.startDaemon("-f", "../../specs/lab-uplinks.yaml")
	d.bound(lab.BoxWAN1V4)
	var v6 string
	d.until("isp2's address from its adverts on wan2, both uplinks healthy", func(st reconcile.Status) bool {
		h1, k1 := healthOf(st, "isp1")
		h2, k2 := healthOf(st, "isp2")
		v6 = ""
		for _, e := range st.Facts.Entries {
			if a := e.Fact.SLAAC; a != nil && a.Uplink == "isp2" {
				v6 = a.Address.Addr().String()
			}
		}
		return strings.HasPrefix(v6, "2001:db8:102:") && k1 && h1 && k2 && h2 && converged(st) &&
			strings.Contains(b.ip("-6", "addr", "show", "dev", "wan2"), v6+"/64")
	})
	// The LAN leaves by isp1 (priority 10), NATed to its leased address.
	leavesBy := func(want string) func(reconcile.Status) bool {
		return func(reconcile.Status) bool {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			got, err := l.Whoami(ctx, lab.RoleLAN, "tcp", lab.ServerV4+":7", "")
			return err == nil && got.Addr().String() == want
		}
	}
	d.until("the LAN out of isp1", leavesBy(lab.BoxWAN1V4))
	for _, c := range []struct {
		isp      lab.Role
		uplink   string
		other    string
		otherNAT string
	}{
		{lab.RoleISP1, "isp1", "isp2", lab.BoxWAN2V4},
		{lab.RoleISP2, "isp2", "isp1", lab.BoxWAN1V4},
	} {
		if err := l.Inject(context.Background(), lab.Fault{ISP: c.isp, Kind: lab.FaultBlackhole}); err != nil {
			t.Fatal(err)
		}
		d.until(c.uplink+" unhealthy", func(st reconcile.Status) bool {
			h, known := healthOf(st, c.uplink)
			return known && !h && converged(st)
		})
		d.until("the LAN out of "+c.other, leavesBy(c.otherNAT))
		if err := l.Clear(context.Background(), c.isp); err != nil {
			t.Fatal(err)
		}
		d.until(c.uplink+" healthy again", func(st reconcile.Status) bool {
			h, known := healthOf(st, c.uplink)
			return known && h && converged(st)
		})
		d.until("the LAN out of isp1 again", leavesBy(lab.BoxWAN1V4))
	}
	// The lease held through it all.
	d.bound(lab.BoxWAN1V4)
}
