package main

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

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
	fmt.Fprintf(w, "facts:      version %d\n", st.Facts.Version)
}

func orNone(s string) string {
	if s == "" {
		return "(none yet)"
	}
	return s
}
