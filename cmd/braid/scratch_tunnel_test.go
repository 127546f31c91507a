package main

import (
	"testing"
	"time"

	"github.com/braid-router/braid/facts"
	"github.com/braid-router/braid/internal/lnstest"
	"github.com/braid-router/braid/lab"
	"github.com/braid-router/braid/reconcile"
)

func TestScratchTunnelLink(t *testing.T) {
	_, b, n := sixpeLab(t, lnstest.Options{}, "")
	d := b.startDaemon("-f", "../../specs/lab-6pe.yaml")
	d.bound(lab.BoxWAN1V4)
	st := d.untilWithin("link", 2*time.Minute, func(st reconcile.Status) bool {
		_, ok := factOf(st, func(f facts.Fact) *facts.Link { return f.Link })
		return ok && converged(st)
	})
	s, _ := sessionIn(st, tunnelSession)
	t.Logf("session: %+v", s)
	t.Log(b.ip("-6", "addr", "show", "dev", "sixpe"))
	t.Log(b.ip("-6", "route", "show", "table", "7191"))
	time.Sleep(6 * time.Second)
	st, _ = d.status()
	s, _ = sessionIn(st, tunnelSession)
	t.Logf("session: %+v", s)
	t.Log(b.must(0, "status").stdout)
	t.Log(n.Log()[max(0, len(n.Log())-3000):])
	t.Log(d.logs.String())
}
