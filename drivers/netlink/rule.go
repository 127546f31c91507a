package netlink

import (
	"errors"
	"fmt"
	"net/netip"

	vnl "github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/braid-router/braid/reconcile/plan"
)

// ruleKey is a rule's identity: family, priority and selectors, masked.
type ruleKey struct {
	v6       bool
	priority int
	from, to netip.Prefix
	mark     uint32
}

func maskedOrZero(p netip.Prefix) netip.Prefix {
	if !p.IsValid() {
		return netip.Prefix{}
	}
	return p.Masked()
}

func (r Rule) key() ruleKey {
	return ruleKey{v6: r.Family() == "inet6", priority: r.Priority, from: maskedOrZero(r.From), to: maskedOrZero(r.To), mark: r.Mark}
}

// ruleFrom converts a kernel rule.
func ruleFrom(lr vnl.Rule) Rule {
	r := Rule{
		Priority:          lr.Priority,
		IPv6:              lr.Family == unix.AF_INET6,
		Table:             lr.Table,
		SuppressPrefixlen: lr.SuppressPrefixlen,
		Mark:              lr.Mark,
	}
	if lr.Src != nil {
		r.From = prefixFrom(lr.Src, r.IPv6)
	}
	if lr.Dst != nil {
		r.To = prefixFrom(lr.Dst, r.IPv6)
	}
	return r
}

// dumpRules lists the rules of one family.
func (d *Driver) dumpRules(family int) ([]vnl.Rule, error) {
	var list []vnl.Rule
	var err error
	for range dumpAttempts {
		list, err = d.h.RuleListFiltered(family, nil, 0)
		if !errors.Is(err, vnl.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("list rules: %w", err)
	}
	return list, nil
}

// observeRules appends to out braid's rules among the dumped ones (IPv4,
// IPv6), and a foreign rule only when it has the identity of a desired
// one.
func (d *Driver) observeRules(out []plan.Observed, lists [2][]vnl.Rule, want map[ruleKey]Rule) []plan.Observed {
	var foreign []plan.Observed
	for _, list := range lists {
		for _, lr := range list {
			r := ruleFrom(lr)
			w, wanted := want[r.key()]
			if wanted {
				r.IPv6, r.From, r.To = w.IPv6, w.From, w.To
			}
			switch {
			case int(lr.Protocol) == Protocol:
				out = append(out, plan.Observed{Resource: r})
			case wanted:
				r.Proto = int(lr.Protocol)
				foreign = append(foreign, plan.Observed{Resource: r, Foreign: true})
			}
		}
	}
	return append(out, foreign...)
}

// kernelRule converts a rule for the netlink library, with braid's
// protocol.
func kernelRule(r Rule) (*vnl.Rule, error) {
	nr := vnl.NewRule() // -1 is "unset" for several fields
	nr.Priority = r.Priority
	nr.Family = unix.AF_INET
	if r.Family() == "inet6" {
		nr.Family = unix.AF_INET6
	}
	if r.From.IsValid() {
		nr.Src = ipNet(r.From.Masked())
	}
	if r.To.IsValid() {
		nr.Dst = ipNet(r.To.Masked())
	}
	nr.Table = r.Table
	nr.Mark = r.Mark
	nr.SuppressPrefixlen = r.SuppressPrefixlen
	if nr.SuppressPrefixlen < 0 {
		nr.SuppressPrefixlen = -1
	}
	nr.Protocol = Protocol
	if r.Table >= 256 && nr.SuppressPrefixlen >= 0 {
		// vishvananda/netlink sends FRA_SUPPRESS_PREFIXLEN only for
		// tables below 256; refuse rather than add a different rule.
		return nil, errors.New("suppress_prefixlength is supported only with tables below 256")
	}
	return nr, nil
}

// applyRule adds or deletes a rule. An update adds the new rule before it
// deletes the old one, so that traffic never falls through to a later rule.
func (d *Driver) applyRule(c plan.Change, r Rule) (bool, error) {
	if c.Action == plan.Delete {
		return d.deleteRule(r)
	}
	nr, err := kernelRule(r)
	if err != nil {
		return false, fmt.Errorf("add rule %s: %w", r.Address(), err)
	}
	wrote := false
	err = d.h.RuleAdd(nr)
	switch {
	case err == nil:
		d.wrote()
		wrote = true
	case errors.Is(err, unix.EEXIST):
		ours, ferr := d.haveRule(r)
		if ferr != nil {
			return false, fmt.Errorf("add rule %s: %w (and listing rules: %v)", r.Address(), err, ferr)
		}
		if !ours {
			return false, fmt.Errorf("add rule %s: %w (an equal rule braid did not add); left alone", r.Address(), ErrConflict)
		}
	default:
		return false, fmt.Errorf("add rule %s: %w", r.Address(), err)
	}
	if c.Action == plan.Update && c.Before != nil {
		if old, ok := c.Before.(Rule); ok && !equalFields(old, r) {
			w, err := d.deleteRule(old)
			return wrote || w, err
		}
	}
	return wrote, nil
}

func (d *Driver) deleteRule(r Rule) (bool, error) {
	nr, err := kernelRule(r)
	if err != nil {
		return false, fmt.Errorf("delete rule %s: %w", r.Address(), err)
	}
	err = d.h.RuleDel(nr)
	if isGone(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("delete rule %s: %w", r.Address(), err)
	}
	d.wrote()
	return true, nil
}

// haveRule reports whether braid's own rule equal to r is in the kernel. It
// runs only when an add met EEXIST.
func (d *Driver) haveRule(r Rule) (bool, error) {
	family := vnl.FAMILY_V4
	if r.Family() == "inet6" {
		family = vnl.FAMILY_V6
	}
	list, err := d.dumpRules(family)
	if err != nil {
		return false, err
	}
	k := r.key()
	for _, lr := range list {
		if int(lr.Protocol) != Protocol {
			continue
		}
		lv := ruleFrom(lr)
		if lv.key() == k && equalFields(lv, r) {
			return true, nil
		}
	}
	return false, nil
}
