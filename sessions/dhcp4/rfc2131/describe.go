package rfc2131

import (
	"fmt"
	"strings"
	"time"
)

// Describe says, in one line for `braid status`, what the client holds
// and when its times fall, or why it holds nothing. Times are the local
// clock's.
func (c Client) Describe(now time.Time) string {
	at := func(t time.Time) string { return t.Local().Format(time.TimeOnly) }
	held := func() string {
		l := c.lease
		var b strings.Builder
		fmt.Fprintf(&b, "%s", l.Address)
		if l.Gateway.IsValid() {
			fmt.Fprintf(&b, " via %s", l.Gateway)
		}
		fmt.Fprintf(&b, " from server %s", l.Server)
		if l.Infinite() {
			b.WriteString(", infinite lease")
		}
		return b.String()
	}
	switch c.phase {
	case Bound:
		if c.lease.Infinite() {
			return "bound " + held()
		}
		return fmt.Sprintf("bound %s; renews at %s, rebinds at %s, expires at %s", held(), at(c.lease.Renew), at(c.lease.Rebind), at(c.lease.Expiry))
	case Renewing:
		return fmt.Sprintf("renewing %s (%d REQUESTs unanswered); rebinds at %s, expires at %s", held(), c.sent, at(c.lease.Rebind), at(c.lease.Expiry))
	case Rebinding:
		return fmt.Sprintf("rebinding %s with any server (%d REQUESTs unanswered); expires at %s", held(), c.sent, at(c.lease.Expiry))
	case Rebooting:
		return fmt.Sprintf("confirming %s, held before a restart (INIT-REBOOT, %d REQUESTs sent)", held(), c.sent)
	case Requesting:
		return fmt.Sprintf("requesting %s offered by %s (%d REQUESTs sent)", c.offer.Address.Addr(), c.offer.Server, c.sent)
	case Checking:
		return fmt.Sprintf("checking that %s from %s is free before taking it", c.offer.Address.Addr(), c.offer.Server)
	case Selecting:
		waited := now.Sub(c.searching)
		s := fmt.Sprintf("no offer in %d s (%d DISCOVERs): %s", int(waited/time.Second), c.sent, c.hint())
		if c.sent <= 1 && waited < c.timing.Retransmit {
			s = "DISCOVER sent, waiting for an offer"
		}
		if c.why != "" {
			s += "; before: " + c.why
		}
		return s
	case Init:
		return fmt.Sprintf("%s; asking again at %s", c.why, at(c.due))
	case Stopped:
		return "stopped"
	}
	return c.phase.String()
}

// hint is the likeliest reason a server stays silent.
func (c Client) hint() string {
	if c.id.VendorClass == "" {
		return "the server may require a vendor class (option 60)"
	}
	return fmt.Sprintf("the server may not answer vendor class %q (option 60)", c.id.VendorClass)
}
