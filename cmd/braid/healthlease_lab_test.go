package main

import (
	"context"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/braid-router/braid/lab"
	"github.com/braid-router/braid/lab/labtest"
	"github.com/braid-router/braid/reconcile"
)

// An uplink on DHCP is not declared dead while it waits for its lease:
// with specs/lab-uplinks.yaml, isp1's tracker starts with only its static
// IPv6 address and IPv4 probes, which cannot leave. Those rounds are no
// evidence: isp1 stays healthy ("unknown", waiting for an address) with
// its IPv6 default route in the main table, never goes unhealthy, and once
// the lease comes the LAN leaves by isp1 without a detour by isp2. The
// ONT's DHCP server is held back until the tracker has been through more
// rounds than failAfter, so that the lease comes late whatever the load.
func TestHealthWaitsForTheLease(t *testing.T) {
	l := labtest.New(t)
	b := labBoxOf(t, l)
	box := l.NS(lab.RoleBox)
	if err := l.Stop(lab.DHCP4Process); err != nil {
		t.Fatal(err)
	}
	metricsAddr := "127.0.0.1:" + strconv.Itoa(b.freePort())
	d := b.startDaemon("-f", "../../specs/lab-uplinks.yaml", "--metrics-listen", metricsAddr)
	toUnhealthy := func() float64 {
		t.Helper()
		fams, err := b.scrape(metricsAddr)
		if err != nil {
			t.Fatalf("scrape: %v", err)
		}
		v, _ := metricValue(fams, "braid_uplink_health_transitions_total", "uplink", "isp1", "to", "unhealthy")
		return v
	}
	unhealthyLine := regexp.MustCompile(`(?m)uplink health.* uplink=isp1 .*verdict=unhealthy`)
	// noFlap checks that isp1 has never been unhealthy, by the counter and
	// by the log.
	noFlap := func(when string) {
		t.Helper()
		if n := toUnhealthy(); n != 0 {
			t.Errorf("%s: isp1 went unhealthy %v times", when, n)
		}
		if unhealthyLine.MatchString(d.logs.String()) {
			t.Errorf("%s: isp1 logged unhealthy", when)
		}
	}

	// failAfter (3) + 2 rounds of isp1's tracker without an IPv4 address,
	// counted from its status whichever way it counts them.
	rounds := regexp.MustCompile(`(\d+) rounds not sent|last (\d+) rounds`)
	st := d.until("isp1's tracker through 5 rounds without a lease", func(st reconcile.Status) bool {
		s, ok := sessionIn(st, "session[health/isp1]")
		m := rounds.FindStringSubmatch(s.Detail)
		if !ok || m == nil {
			return false
		}
		n, _ := strconv.Atoi(m[1] + m[2])
		return n >= 5
	})
	if _, ok := leaseIn(st); ok {
		t.Fatal("isp1 has a lease with its DHCP server stopped")
	}
	s, _ := sessionIn(st, "session[health/isp1]")
	t.Logf("isp1's tracker without a lease: %s", s.Detail)
	if !strings.HasPrefix(s.Detail, "unknown for ") || !strings.Contains(s.Detail, "no IPv4 source address") {
		t.Errorf("status of isp1's tracker without a lease: %q", s.Detail)
	}
	if h, known := healthOf(st, "isp1"); !known || !h {
		t.Errorf("isp1's verdict without a lease: healthy %v, known %v", h, known)
	}
	if defaults := mainDefaults(t, box); !slices.Contains(defaults, "wan1 v6") {
		t.Errorf("isp1's IPv6 default route left the main table while it waited for its lease: %v", defaults)
	}
	noFlap("before the lease")

	if err := l.Resume(context.Background(), lab.DHCP4Process); err != nil {
		t.Fatal(err)
	}
	d.untilWithin("a lease of "+lab.BoxWAN1V4+" on wan1", 2*time.Minute, func(st reconcile.Status) bool {
		e, ok := leaseIn(st)
		return ok && e.Fact.Lease4.Address.Addr().String() == lab.BoxWAN1V4 && converged(st)
	})
	d.until("isp1 healthy by its probes, its IPv4 default route in the main table", func(st reconcile.Status) bool {
		s, _ := sessionIn(st, "session[health/isp1]")
		h, known := healthOf(st, "isp1")
		return known && h && strings.HasPrefix(s.Detail, "healthy for ") && strings.Contains(s.Detail, "loss 0%") &&
			converged(st) && slices.Contains(mainDefaults(t, box), "wan1 v4")
	})
	d.until("the LAN out of isp1", func(reconcile.Status) bool {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		got, err := l.Whoami(ctx, lab.RoleLAN, "tcp", lab.ServerV4+":7", "")
		return err == nil && got.Addr().String() == lab.BoxWAN1V4
	})
	noFlap("after the lease")
}
