package rfc8415

import (
	"fmt"
	"strings"
	"time"
)

// Describe says, in one line for `braid status`, what the client holds
// (each prefix with what is left of its preferred and valid lifetimes,
// the server, the resolvers) and when its times fall, or, beginning with
// "no prefix delegated", why it holds nothing.
func (c Client) Describe(now time.Time) string {
	in := func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return "in " + max(t.Sub(now), 0).Round(time.Second).String()
	}
	left := func(t time.Time) string {
		if t.IsZero() {
			return "forever"
		}
		return "for " + max(t.Sub(now), 0).Round(time.Second).String()
	}
	held := func() string {
		l := c.lease
		var ps []string
		for _, p := range l.Prefixes {
			ps = append(ps, fmt.Sprintf("%s preferred %s, valid %s", p.Prefix, left(p.Preferred), left(p.Valid)))
		}
		s := "prefix " + strings.Join(ps, "; ") + ", from server " + DUIDString(l.Server)
		if len(l.DNS) > 0 {
			s += fmt.Sprintf(", dns %v", l.DNS)
		}
		return s
	}
	expires := func() string { return "expires " + in(c.lease.End()) }
	var s string
	switch c.phase {
	case Bound:
		return fmt.Sprintf("%s; renews %s, rebinds %s, %s", held(), in(c.lease.Renew), in(c.lease.Rebind), expires())
	case Renewing:
		return fmt.Sprintf("%s; renewing (%d Renews sent), rebinds %s, %s", held(), c.sent, in(c.lease.Rebind), expires())
	case Rebinding:
		return fmt.Sprintf("%s; rebinding with any server (%d Rebinds sent), %s", held(), c.sent, expires())
	case Releasing:
		return fmt.Sprintf("releasing %s (%d Releases sent)", held(), c.sent)
	case Stopped:
		return "stopped"
	case Requesting:
		s = fmt.Sprintf("requesting a prefix from server %s (%d Requests sent)", DUIDString(c.offer.Server), c.sent)
	case Soliciting:
		waited := now.Sub(c.searching)
		s = fmt.Sprintf("no Advertise in %d s (%d Solicits)", int(waited/time.Second), c.sent)
		if c.sent <= 1 && waited < c.timing.SolTimeout*2 {
			s = "Solicit sent, waiting for an Advertise"
		}
	case Init:
		s = "soliciting " + in(c.due)
	}
	if c.lease.Holds() {
		s = held() + ", " + expires() + "; " + s
	} else {
		s = "no prefix delegated: " + s
	}
	if c.why != "" {
		s += "; before: " + c.why
	}
	return s
}
