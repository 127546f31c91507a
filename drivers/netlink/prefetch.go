package netlink

import (
	"context"
	"sync"

	vnl "github.com/vishvananda/netlink"
)

// snapshot is what Observe reads from the kernel: one dump per object kind
// and family. Sysctls are not in it: they are read by Observe itself, from
// its own thread (/proc/sys/net belongs to the namespace of the thread
// that opens the file).
type snapshot struct {
	links  map[string]vnl.Link
	addrs  []vnl.Addr
	routes [2][]liveRoute // IPv4, IPv6
	rules  [2][]vnl.Rule  // IPv4, IPv6
}

// families are the address families of snapshot.routes and .rules.
var families = [2]int{vnl.FAMILY_V4, vnl.FAMILY_V6}

// dump takes a snapshot. It uses only the driver's sockets, which belong
// to the namespace they were opened in, so it may run on any thread. With
// the driver's own sockets and side, the IPv6 routes are dumped (over
// raw6) while the rest is: Observe does, which waits for the dumps, but
// not Prefetch, whose dumps already run beside the caller's work.
func (d *Driver) dump(ctx context.Context, side bool) (*snapshot, error) {
	s := &snapshot{}
	var v6err error
	var wg sync.WaitGroup
	side = side && d.raw6 != nil
	if side {
		wg.Go(func() { s.routes[1], v6err = d.dumpRoutes(vnl.FAMILY_V6) })
	}
	err := d.dumpRest(ctx, s, side)
	wg.Wait()
	if err != nil {
		return nil, err
	}
	if v6err != nil {
		return nil, v6err
	}
	return s, nil
}

// dumpRest fills in the snapshot, but for the IPv6 routes if another
// goroutine dumps them.
func (d *Driver) dumpRest(ctx context.Context, s *snapshot, noV6Routes bool) error {
	var err error
	if s.links, err = d.dumpLinks(); err != nil {
		return err
	}
	if s.addrs, err = d.dumpAddrs(); err != nil {
		return err
	}
	for i, family := range families {
		if i == 1 && noV6Routes {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if s.routes[i], err = d.dumpRoutes(family); err != nil {
			return err
		}
	}
	for i, family := range families {
		if s.rules[i], err = d.dumpRules(family); err != nil {
			return err
		}
	}
	return nil
}

// Prefetch implements reconcile.Prefetcher: it starts taking the snapshot
// of the kernel that the next Observe reads, in a goroutine (see package
// prefetch: the next Observe waits for it and uses it instead of dumping
// again, once; a write discards it).
//
// The snapshot shows the kernel as it was at some moment after Prefetch
// was called, and Observe returns that: what changes between that moment
// and Observe is not seen, as what changes between an Observe and the
// apply that follows it is not. A writer must therefore call Prefetch only
// once it holds the namespace's lock, so that no other braid can write
// between the snapshot and its plan; changes made meanwhile by programs
// that do not take the lock are what any plan can miss, and the verify
// after the apply, which always dumps afresh, reports them.
//
// A second Prefetch while one is pending does nothing, and so does
// Prefetch on a driver given a caller's Options.Handle (the caller may use
// the handle meanwhile) or closed.
func (d *Driver) Prefetch(ctx context.Context) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.ownHandle {
		return
	}
	d.pre.Start(func() (*snapshot, error) { return d.dump(context.WithoutCancel(ctx), false) })
}
