package netlink

import (
	"fmt"
	"net"

	vnl "github.com/vishvananda/netlink"

	"github.com/braid-router/braid/reconcile/plan"
)

// linkState is a link's recorded state from before braid changed it.
type linkState struct {
	Up  bool `json:"up"`
	MTU int  `json:"mtu"`
}

func stateOf(l vnl.Link) linkState {
	a := l.Attrs()
	return linkState{Up: a.Flags&net.FlagUp != 0, MTU: a.MTU}
}

// observeLinks reports every desired or recorded link. A desired link
// reports its MTU only if it sets one, so that "leave it" stays equal; a
// recorded link no longer desired reports its MTU, and is deleted (put
// back) by the plan.
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
		out = append(out, plan.Observed{Resource: Link{Name: name, Up: s.Up, MTU: s.MTU}})
	}
	return out, stale, nil
}

// applyLink sets a link's MTU and admin state, recording the previous ones
// first; a delete puts the recorded ones back.
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
	if err := d.rec.PutIfAbsent(KindLink, l.Name, cur); err != nil {
		return false, err
	}
	want := linkState{Up: l.Up, MTU: l.MTU}
	if want.MTU == 0 {
		want.MTU = cur.MTU
	}
	return d.setLink(lk, cur, want)
}

// setLink moves a link from cur to want: MTU first, then admin state.
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
	if want.Up != cur.Up {
		var err error
		if want.Up {
			err = d.h.LinkSetUp(lk)
		} else {
			err = d.h.LinkSetDown(lk)
		}
		if err != nil {
			return wrote, fmt.Errorf("set link %s %s: %w", name, upDown(want.Up), err)
		}
		d.wrote()
		wrote = true
	}
	return wrote, nil
}

func upDown(up bool) string {
	if up {
		return "up"
	}
	return "down"
}
