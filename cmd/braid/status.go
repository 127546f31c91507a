package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/braid-router/braid/facts"
	"github.com/braid-router/braid/reconcile"
	"github.com/braid-router/braid/reconcile/plan"
)

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// writeStatus prints the daemon's status for a person.
func writeStatus(w io.Writer, ns string, st reconcile.Status) {
	fmt.Fprintf(w, "namespace:  %s\n", ns)
	fmt.Fprintf(w, "source:     %s\n", st.Source)
	fmt.Fprintf(w, "revision:   %s\n", orNone(st.Revision))
	for _, warn := range st.Warnings {
		fmt.Fprintf(w, "warning:    %s\n", warn)
	}
	if st.SpecError != "" {
		fmt.Fprintf(w, "rejected:   %s (not applied; the revision above stays)\n  %s\n", st.RejectedRev, st.SpecError)
	}
	if tr := st.Trial; tr != nil {
		fmt.Fprintf(w, "trial:      revision %s", tr.Revision)
		if !tr.ConfirmBy.IsZero() && !tr.Confirmed {
			fmt.Fprintf(w, ", reverted at %s unless `braid confirm`", tr.ConfirmBy.Format(time.TimeOnly))
		}
		if len(tr.Waiting) > 0 {
			fmt.Fprintf(w, ", waiting until %s for %v to answer again", tr.ProbeBy.Format(time.TimeOnly), tr.Waiting)
		}
		fmt.Fprintln(w)
	}
	for _, q := range st.Quarantined {
		fmt.Fprintf(w, "quarantined: %s at %s: %s\n", q.Revision, q.At.Format(time.RFC3339), q.Reason)
	}
	if p := st.LastPass; p != nil {
		fmt.Fprintf(w, "last pass:  %s, %s ago, took %s, %d changes, triggered by %v\n",
			p.Result, time.Since(p.Start).Round(time.Second), p.Duration.Round(time.Microsecond), p.Changes, p.Triggers)
		if p.Error != "" {
			fmt.Fprintf(w, "  error: %s\n", p.Error)
		}
	}
	fmt.Fprintf(w, "passes:     %d (%d applied changes, %d repaired drift, %d failed)\n", st.Passes, st.Applying, st.Repairs, st.Failures)
	counts := map[plan.State]int{}
	for _, o := range st.Objects {
		counts[o.State]++
	}
	fmt.Fprintf(w, "objects:    %d done, %d pending, %d error\n", counts[plan.Done], counts[plan.Pending], counts[plan.Failed])
	for _, o := range st.Objects {
		if o.State != plan.Done {
			fmt.Fprintf(w, "  %-8s %s", o.State, o.Address)
			if o.Error != "" {
				fmt.Fprintf(w, ": %s", o.Error)
			}
			fmt.Fprintln(w)
		}
	}
	for _, n := range st.Notes {
		fmt.Fprintf(w, "  note     %s\n", n)
	}
	if len(st.PlanWarnings) > 0 {
		fmt.Fprintf(w, "defeated:   %d (what else on this box drops what braid lets through; braid leaves it alone)\n", len(st.PlanWarnings))
		for _, warn := range st.PlanWarnings {
			for i, l := range warn.Lines() {
				if i == 0 {
					fmt.Fprintf(w, "  ! %s\n", l)
				} else {
					fmt.Fprintf(w, "  %s\n", l)
				}
			}
		}
	}
	fmt.Fprintf(w, "sessions:   %d\n", len(st.Sessions))
	for _, s := range st.Sessions {
		fmt.Fprintf(w, "  %-11s %s for %s", s.State, s.Address, age(s.Since))
		// A detail's first line follows the address; its others (a
		// session's warnings: "! isp2: ...") go under it, indented.
		first, more, _ := strings.Cut(s.Detail, "\n")
		if first != "" {
			fmt.Fprintf(w, ": %s", first)
		}
		fmt.Fprintln(w)
		for l := range strings.SplitSeq(more, "\n") {
			if l != "" {
				fmt.Fprintf(w, "              %s\n", l)
			}
		}
		if s.LastError != "" {
			fmt.Fprintf(w, "              last error %s ago (%d restarts): %s\n", age(s.LastErrorAt), s.Restarts, s.LastError)
		}
	}
	if len(st.Resolvers) > 0 {
		fmt.Fprintf(w, "resolvers:  %s (braid's own lookups)\n", strings.Join(st.Resolvers, ", "))
	}
	fmt.Fprintf(w, "facts:      version %d, %d facts\n", st.Facts.Version, len(st.Facts.Entries))
	for _, e := range st.Facts.Entries {
		life := "until replaced"
		if !e.Expires.IsZero() {
			life = "expires in " + time.Until(e.Expires).Round(time.Second).String()
		}
		if e.Process {
			life += ", this process only"
		}
		fmt.Fprintf(w, "  %-7s %-18s from %s (%s): %s\n", e.Kind, e.Subject, e.Owner, life, describeFact(e.Fact))
	}
}

// age renders how long ago t was, to the second.
func age(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return time.Since(t).Round(time.Second).String()
}

// describeFact renders a fact's content on one line.
func describeFact(f facts.Fact) string {
	switch {
	case f.Lease4 != nil:
		s := f.Lease4.Address.String()
		if f.Lease4.Gateway.IsValid() {
			s += " via " + f.Lease4.Gateway.String()
		}
		if len(f.Lease4.DNS) > 0 {
			s += fmt.Sprintf(" dns %v", f.Lease4.DNS)
		}
		if f.Lease4.Server.IsValid() {
			s += " from server " + f.Lease4.Server.String()
		}
		switch r := f.Lease4.Renew; {
		case r.IsZero():
		case time.Now().Before(r):
			s += ", renews in " + time.Until(r).Round(time.Second).String()
		case time.Now().Before(f.Lease4.Rebind):
			s += ", renewing"
		default:
			s += ", rebinding"
		}
		return s
	case f.SLAAC != nil:
		s := f.SLAAC.Address.String() + " on " + f.SLAAC.Link
		if !f.SLAAC.Preferred.IsZero() {
			s += ", preferred for " + time.Until(f.SLAAC.Preferred).Round(time.Second).String()
		}
		for _, d := range f.SLAAC.DNS {
			s += ", dns " + d.Addr.String()
			if !d.Expires.IsZero() {
				s += " for " + time.Until(d.Expires).Round(time.Second).String()
			}
		}
		return s
	case f.Router6 != nil:
		return "default router " + f.Router6.Router.String() + "%" + f.Router6.Link
	case f.Health != nil:
		if f.Health.Healthy {
			return "healthy"
		}
		return "unhealthy"
	case f.Peer != nil:
		s := "down"
		if f.Peer.Healthy {
			s = "up"
		}
		if len(f.Peer.Uplinks) > 0 {
			s += " over " + strings.Join(f.Peer.Uplinks, ", ")
		}
		if f.Peer.Reason != "" {
			s += ": " + f.Peer.Reason
		}
		return s
	case f.Link != nil:
		l := f.Link
		s := "link " + l.Name
		for _, a := range l.Addresses {
			s += " " + a.String()
		}
		if l.Peer.IsValid() {
			s += ", peer " + l.Peer.String()
		}
		if l.MTU > 0 {
			s += fmt.Sprintf(", MTU %d", l.MTU)
		}
		return s
	case f.Prefix != nil:
		p := f.Prefix
		s := p.Prefix.String()
		if p.Link != "" {
			s += " on " + p.Link
		}
		if !p.Preferred.IsZero() {
			s += ", preferred for " + time.Until(p.Preferred).Round(time.Second).String()
		}
		if len(p.DNS) > 0 {
			s += fmt.Sprintf(", dns %v", p.DNS)
		}
		if p.Server != "" {
			s += " from server " + p.Server
		}
		switch r := p.Renew; {
		case r.IsZero():
		case time.Now().Before(r):
			s += ", renews in " + time.Until(r).Round(time.Second).String()
		case time.Now().Before(p.Rebind):
			s += ", renewing"
		default:
			s += ", rebinding"
		}
		return s
	case f.Interface != nil:
		i := f.Interface
		if !i.Present {
			return "missing"
		}
		s := fmt.Sprintf("present, index %d", i.Index)
		if i.MAC != "" {
			s += ", mac " + i.MAC
		}
		if i.Carrier {
			return s + ", carrier"
		}
		return s + ", no carrier"
	}
	return ""
}

func orNone(s string) string {
	if s == "" {
		return "(none yet)"
	}
	return s
}
