package main

import (
	"log/slog"

	"github.com/braid-router/braid/drivers/coexist"
	"github.com/braid-router/braid/drivers/failpoint"
	"github.com/braid-router/braid/drivers/mptcp"
	nl "github.com/braid-router/braid/drivers/netlink"
	"github.com/braid-router/braid/drivers/nftables"
	"github.com/braid-router/braid/drivers/record"
	"github.com/braid-router/braid/drivers/xtables"
	"github.com/braid-router/braid/reconcile"
)

// driverOptions is what every driver is built with.
type driverOptions struct {
	record *record.Record
	writes *failpoint.Counter
	log    *slog.Logger
}

// newDrivers builds the drivers in apply order: netlink (links, sysctls,
// addresses, routes, rules), MPTCP, nftables. Deletes run in reverse.
func newDrivers(o driverOptions) ([]reconcile.Driver, error) {
	netlink, err := nl.New(nl.Options{Record: o.record, Writes: o.writes, Log: o.log})
	if err != nil {
		return nil, err
	}
	drivers := []reconcile.Driver{netlink}
	drivers = append(drivers, mptcp.New(mptcp.Options{Record: o.record, Writes: o.writes, Log: o.log}))
	drivers = append(drivers, nftables.New(nftables.Options{Writes: o.writes, Log: o.log}))
	return drivers, nil
}

// newCheckers builds the checks every plan runs beside the drivers: the
// other firewalls on the box, read through the nftables driver's sockets.
func newCheckers(drivers []reconcile.Driver) []reconcile.Checker {
	for _, d := range drivers {
		if n, ok := d.(*nftables.Driver); ok {
			return []reconcile.Checker{&coexist.Checker{Foreign: n.ReadForeign, Legacy: xtables.Read, Ifindex: coexist.Ifindex}}
		}
	}
	return nil
}
