package netlink

import (
	"errors"
	"fmt"
	"slices"

	vnl "github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/braid-router/braid/reconcile/plan"
)

// recordKey is the address's key in the ownership record: "LINK PREFIX".
func (a Addr) recordKey() string { return a.Link + " " + a.Prefix.String() }

// addrFlags are the flags braid adds addresses with. IFA_F_NOPREFIXROUTE:
// the prefix route is braid's own route, so its loss is drift braid sees.
// IFA_F_NODAD on IPv6: braid's addresses are static and assigned by the
// spec, and an address in duplicate address detection is "tentative" and
// refused as a route's source (RTA_PREFSRC), so without it the routes that
// use it could not be installed in the same pass (and never on a link
// without carrier). The price is that a duplicate on the link goes
// undetected, as for IPv4.
func addrFlags(a Addr) int {
	f := unix.IFA_F_NOPREFIXROUTE
	if a.Prefix.Addr().Is6() {
		f |= unix.IFA_F_NODAD
	}
	return f
}

// dumpAddrs lists the addresses of every link.
func (d *Driver) dumpAddrs() ([]vnl.Addr, error) {
	var list []vnl.Addr
	var err error
	for range dumpAttempts {
		list, err = d.h.AddrList(nil, vnl.FAMILY_ALL)
		if !errors.Is(err, vnl.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	return list, nil
}

// observeAddrs reports the recorded addresses that are live as braid's,
// and a live address equal to a desired one that braid did not record as
// foreign. Recorded addresses that are gone are stale.
func (d *Driver) observeAddrs(list []vnl.Addr, want map[string]Addr) ([]plan.Observed, []recordKey) {
	live := make(map[string]Addr, len(list))
	for _, la := range list {
		if la.IPNet == nil {
			continue
		}
		a := Addr{Link: d.linkName(la.LinkIndex), Prefix: prefixFrom(la.IPNet, false)}
		live[a.recordKey()] = a
	}
	var out []plan.Observed
	var stale []recordKey
	recorded := d.rec.Keys(KindAddress)
	for _, k := range recorded {
		a, ok := live[k]
		if !ok {
			stale = append(stale, recordKey{KindAddress, k})
			continue
		}
		out = append(out, plan.Observed{Resource: a})
	}
	for _, k := range sortedKeys(want) {
		if a, ok := live[k]; ok {
			if _, found := slices.BinarySearch(recorded, k); !found {
				out = append(out, plan.Observed{Resource: a, Foreign: true})
			}
		}
	}
	return out, stale
}

// applyAddr adds an address with noprefixroute, recording it first, or
// deletes it and then its record entry.
func (d *Driver) applyAddr(action plan.Action, a Addr) (bool, error) {
	key := a.recordKey()
	na := &vnl.Addr{IPNet: ipNet(a.Prefix), Flags: addrFlags(a)}
	if action == plan.Delete {
		err := d.withIndex(a.Link, func(i int) error {
			na.LinkIndex = i
			return d.h.AddrDel(nil, na)
		})
		wrote := err == nil
		if wrote {
			d.wrote()
		} else if !isGone(err) && !isNoLink(err) {
			return false, fmt.Errorf("delete address %s: %w", a.Address(), err)
		}
		return wrote, d.rec.Delete(KindAddress, key)
	}
	if action == plan.Update {
		// An address's fields are its identity: nothing to update.
		return false, nil
	}
	// Recorded before: braid's own address (not one written ahead for
	// this batch).
	had := d.rec.Has(KindAddress, key) && !d.rec.WroteAhead(KindAddress, key)
	if _, err := d.ifindex(a.Link); err != nil {
		return false, fmt.Errorf("add address %s: %w", a.Address(), err)
	}
	if err := d.rec.Put(KindAddress, key, struct{}{}); err != nil {
		return false, err
	}
	err := d.withIndex(a.Link, func(i int) error {
		na.LinkIndex = i
		return d.h.AddrAdd(nil, na)
	})
	switch {
	case err == nil:
		d.wrote()
		return true, nil
	case errors.Is(err, unix.EEXIST) && had:
		return false, nil
	}
	if !had {
		// Nothing took effect: do not claim the address.
		if derr := d.rec.Delete(KindAddress, key); derr != nil {
			return false, errors.Join(err, derr)
		}
	}
	if errors.Is(err, unix.EEXIST) {
		return false, fmt.Errorf("add address %s: %w (an address braid did not add); left alone", a.Address(), ErrConflict)
	}
	return false, fmt.Errorf("add address %s: %w", a.Address(), err)
}

// isNoLink reports whether err says the link does not exist.
func isNoLink(err error) bool {
	var nf vnl.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, ErrNoLink)
}
