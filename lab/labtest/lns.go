package labtest

import (
	"context"
	"testing"
	"time"

	"github.com/braid-router/braid/internal/lnstest"
	"github.com/braid-router/braid/lab"
)

// Where the real LNS (package lnstest: xl2tpd, pppd and Kea in a QEMU
// guest, from the shared test peers, which the lab itself never needs)
// sits when a lab hosts it: on the bridge br-lns in the lab's isp1, as
// an ISP's LNS behind its access network.
const (
	// LNSAddr is the LNS's IPv4 address, where the box sends L2TP.
	LNSAddr = "10.77.1.2"
	// LNSDelegated is the aggregate the LNS delegates prefixes from: a
	// /56 of 2001:db8:e000::/48 for its first session, and so on. The
	// lab uses it nowhere else.
	LNSDelegated = "2001:db8:e000::/40"
)

// LNS is the real LNS behind a lab's isp1.
type LNS struct {
	*lnstest.LNS
	t    testing.TB
	lab  *lab.Lab
	opts lnstest.Options
}

// StartLNS boots the real LNS behind the lab's isp1 (run-lns.sh with
// LNS_NETNS=<lab>-isp1: the box reaches it through its first uplink,
// routed), routes the prefixes it delegates from the lab's Internet core
// to isp1 (which the script routes to the LNS), and stops it when the
// test ends, before the lab goes (cleanups run in reverse). LNS tests run
// one after another (lnstest's lock). Without the shared peers the test
// skips, or fails under CI=true.
func StartLNS(t testing.TB, l *lab.Lab, opts lnstest.Options) *LNS {
	t.Helper()
	opts.Netns = l.NS(lab.RoleISP1)
	n := &LNS{LNS: lnstest.Start(t, opts), t: t, lab: l, opts: opts}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := l.Run(ctx, lab.RoleInet, "ip", "-6", "route", "replace", LNSDelegated, "via", lab.ISP1UpV6); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		l.Run(context.Background(), lab.RoleInet, "ip", "-6", "route", "del", LNSDelegated)
	})
	return n
}

// Again boots the LNS again, with the same settings, after Stop.
func (n *LNS) Again() {
	n.t.Helper()
	n.LNS = lnstest.Start(n.t, n.opts)
}

// Restart stops the LNS and boots it again, as an LNS restarting under
// its sessions: it forgets them all.
func (n *LNS) Restart() {
	n.t.Helper()
	n.LNS.Stop()
	n.Again()
}
