package netlink

import (
	"errors"
	"fmt"
	"net"

	vnl "github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/braid-router/braid/reconcile/plan"
)

// linkState is a link's recorded state from before braid changed it. MAC
// is empty in a record written before braid managed MAC addresses: then
// braid has never changed it, and there is nothing to put back.
type linkState struct {
	Up  bool   `json:"up"`
	MTU int    `json:"mtu"`
	MAC string `json:"mac,omitempty"`
}

func stateOf(l vnl.Link) linkState {
	a := l.Attrs()
	return linkState{Up: a.Flags&net.FlagUp != 0, MTU: a.MTU, MAC: a.HardwareAddr.String()}
}

// observeLinks reports every desired or recorded link. A desired link
// reports its MTU and MAC address only if it sets them, so that "leave
// it" stays equal; a recorded link no longer desired reports both, and is
// deleted (put back) by the plan.
func (d *Driver) observeLinks(live map[string]vnl.Link, want []Link) ([]plan.Observed, []recordKey, error) {
	var out []plan.Observed
	seen := map[string]bool{}
	for _, w := range want {
		if seen[w.Name] {
			continue
		}
		seen[w.Name] = true
		l, ok := live[w.Name]
		if !ok {
			return nil, nil, fmt.Errorf("link %s: %w", w.Name, ErrNoLink)
		}
		s := stateOf(l)
		o := Link{Name: w.Name, Up: s.Up}
		if w.MTU != 0 {
			o.MTU = s.MTU
		}
		if w.MAC != "" {
			o.MAC = s.MAC
		}
		out = append(out, plan.Observed{Resource: o})
	}
	var stale []recordKey
	for _, name := range d.rec.Keys(KindLink) {
		if seen[name] {
			continue
		}
		l, ok := live[name]
		if !ok {
			stale = append(stale, recordKey{KindLink, name})
			continue
		}
		s := stateOf(l)
		out = append(out, plan.Observed{Resource: Link{Name: name, Up: s.Up, MTU: s.MTU, MAC: s.MAC}})
	}
	return out, stale, nil
}

// applyLink sets a link's MTU, MAC address and admin state, recording the
// previous ones first; a delete puts the recorded ones back.
func (d *Driver) applyLink(action plan.Action, l Link) (bool, error) {
	lk, err := d.h.LinkByName(l.Name)
	if err != nil {
		if isNoLink(err) {
			if action == plan.Delete {
				// Nothing left to put back.
				return false, d.rec.Delete(KindLink, l.Name)
			}
			return false, fmt.Errorf("link %s: %w", l.Name, ErrNoLink)
		}
		return false, fmt.Errorf("link %s: %w", l.Name, err)
	}
	cur := stateOf(lk)
	if action == plan.Delete {
		var prev linkState
		ok, err := d.rec.Get(KindLink, l.Name, &prev)
		if err != nil {
			return false, err
		}
		wrote := false
		if ok {
			if wrote, err = d.setLink(lk, cur, prev); err != nil {
				return wrote, err
			}
		}
		return wrote, d.rec.Delete(KindLink, l.Name)
	}
	if err := d.recordLink(l, cur); err != nil {
		return false, err
	}
	want := linkState{Up: l.Up, MTU: l.MTU, MAC: l.MAC}
	if want.MTU == 0 {
		want.MTU = cur.MTU
	}
	if want.MAC == "" {
		want.MAC = cur.MAC
	}
	return d.setLink(lk, cur, want)
}

// recordLink records cur, the state of l's link before this change, unless
// a previous state is recorded already (the first one is the one to put
// back). A record from before braid managed MAC addresses gains cur's MAC
// before braid first changes it: until now, braid never had.
func (d *Driver) recordLink(l Link, cur linkState) error {
	var prev linkState
	ok, err := d.rec.Get(KindLink, l.Name, &prev)
	switch {
	case err != nil:
		return err
	case !ok:
		return d.rec.Put(KindLink, l.Name, cur)
	case l.MAC != "" && prev.MAC == "":
		prev.MAC = cur.MAC
		return d.rec.Put(KindLink, l.Name, prev)
	}
	return nil
}

// setLink moves a link from cur to want: MTU first; then the MAC address
// and the admin state, in the order that changes the address while the
// link is down when it is ever down (many NICs refuse a new address while
// up): a link going down goes down first, one going up gets its address
// first.
func (d *Driver) setLink(lk vnl.Link, cur, want linkState) (bool, error) {
	name := lk.Attrs().Name
	wrote := false
	if want.MTU != 0 && want.MTU != cur.MTU {
		if err := d.h.LinkSetMTU(lk, want.MTU); err != nil {
			return wrote, fmt.Errorf("set link %s mtu %d: %w", name, want.MTU, err)
		}
		d.wrote()
		wrote = true
	}
	setState := func() error {
		if want.Up == cur.Up {
			return nil
		}
		var err error
		if want.Up {
			err = d.h.LinkSetUp(lk)
		} else {
			err = d.h.LinkSetDown(lk)
		}
		if err != nil {
			return fmt.Errorf("set link %s %s: %w", name, upDown(want.Up), err)
		}
		d.wrote()
		wrote = true
		cur.Up = want.Up
		return nil
	}
	if !want.Up {
		if err := setState(); err != nil {
			return wrote, err
		}
	}
	if want.MAC != "" && want.MAC != cur.MAC {
		hw, err := net.ParseMAC(want.MAC)
		if err != nil {
			return wrote, fmt.Errorf("set link %s address %s: %w", name, want.MAC, err)
		}
		if err := d.h.LinkSetHardwareAddr(lk, hw); err != nil {
			if errors.Is(err, unix.EBUSY) && cur.Up {
				// braid does not bounce an up link for it: that would
				// flush its routes and cut what runs over it.
				return wrote, fmt.Errorf("set link %s address %s: the device cannot change its address while up, and braid does not take it down for that (take it down and apply again): %w", name, want.MAC, err)
			}
			return wrote, fmt.Errorf("set link %s address %s: %w", name, want.MAC, err)
		}
		d.wrote()
		wrote = true
	}
	return wrote, setState()
}

func upDown(up bool) string {
	if up {
		return "up"
	}
	return "down"
}
