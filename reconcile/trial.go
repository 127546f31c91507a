package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/braid-router/braid/api"
	"github.com/braid-router/braid/internal/atomicfile"
	"github.com/braid-router/braid/probe"
	"github.com/braid-router/braid/source"
)

// Prober checks one target once, within ctx; nil means it answered. The
// daemon's default is an unbound probe.Prober's Probe.
type Prober func(ctx context.Context, t probe.Target) error

// Trial is a new revision on probation: it is reverted unless it is
// confirmed in time (when confirmation is required) and every target that
// answered before it answers again within the probe window.
type Trial struct {
	Revision string `json:"revision"`
	// ConfirmBy is the deadline for `braid confirm`; zero if not needed.
	ConfirmBy time.Time `json:"confirmBy,omitzero"`
	Confirmed bool      `json:"confirmed"`
	// ProbeBy is the deadline for the targets in Waiting to answer.
	ProbeBy time.Time      `json:"probeBy,omitzero"`
	Waiting []probe.Target `json:"waiting,omitempty"`

	prev    *api.Document
	prevRev source.Revision
}

// Quarantined is a reverted revision, never applied again until the
// source's revision changes.
type Quarantined struct {
	Revision string    `json:"revision"`
	Reason   string    `json:"reason"`
	At       time.Time `json:"at"`
}

// ErrNothingToConfirm is returned by Confirm when no change awaits it.
var ErrNothingToConfirm = errors.New("no change is waiting for confirmation")

// Confirm accepts the revision on trial.
func (d *Daemon) Confirm() (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.trial == nil || d.trial.ConfirmBy.IsZero() || d.trial.Confirmed {
		return "", ErrNothingToConfirm
	}
	d.trial.Confirmed = true
	d.status.Trial = d.trial
	d.Log.Info("change confirmed", "revision", d.trial.Revision)
	d.Trigger("confirm")
	return d.trial.Revision, nil
}

// baseline checks targets before a change and returns those that answer.
// One that does not answer now is not waited for after the change.
func (d *Daemon) baseline(ctx context.Context, ts []probe.Target) []probe.Target {
	var up []probe.Target
	for i, err := range d.probeAll(ctx, ts) {
		if err == nil {
			up = append(up, ts[i])
		} else {
			d.Log.Warn("a target does not answer before the change: the trial will not wait for it", "target", ts[i], "err", err)
		}
	}
	return up
}

// probeAll checks targets concurrently, each bounded by ProbeTimeout.
func (d *Daemon) probeAll(ctx context.Context, ts []probe.Target) []error {
	errs := make([]error, len(ts))
	done := make(chan struct{}, len(ts))
	for i, t := range ts {
		go func() {
			pctx, cancel := context.WithTimeout(ctx, d.ProbeTimeout)
			defer cancel()
			errs[i] = d.Prober(pctx, t)
			done <- struct{}{}
		}()
	}
	for range ts {
		<-done
	}
	return errs
}

// startTrial puts a newly applied revision on probation.
func (d *Daemon) startTrial(rev source.Revision, prev *api.Document, prevRev source.Revision, waiting []probe.Target) {
	if d.ConfirmWithin <= 0 && len(waiting) == 0 {
		return
	}
	t := &Trial{Revision: rev.ID, Waiting: waiting, prev: prev, prevRev: prevRev}
	now := d.Now()
	if d.ConfirmWithin > 0 {
		t.ConfirmBy = now.Add(d.ConfirmWithin)
	}
	if len(waiting) > 0 {
		t.ProbeBy = now.Add(d.ProbeWindow)
	}
	d.mu.Lock()
	d.trial = t
	d.status.Trial = t
	d.mu.Unlock()
	d.Log.Info("change on trial", "revision", rev.ID, "confirmBy", t.ConfirmBy, "probes", len(waiting), "probeBy", t.ProbeBy)
}

// checkTrial probes what the trial waits for and decides: keep waiting,
// accept, or revert (returned as the reason).
func (d *Daemon) checkTrial(ctx context.Context) (revert string) {
	d.mu.Lock()
	t := d.trial
	var waiting []probe.Target
	if t != nil {
		waiting = slices.Clone(t.Waiting)
	}
	d.mu.Unlock()
	if t == nil {
		return ""
	}
	var still []probe.Target
	var errs []string
	for i, err := range d.probeAll(ctx, waiting) {
		if err != nil {
			still = append(still, waiting[i])
			errs = append(errs, err.Error())
		}
	}
	now := d.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	t.Waiting = still
	switch {
	case len(still) > 0 && now.After(t.ProbeBy):
		return fmt.Sprintf("%d target(s) that answered before the change did not answer within %s: %v (last: %s)", len(still), d.ProbeWindow, still, strings.Join(errs, "; "))
	case !t.ConfirmBy.IsZero() && !t.Confirmed && now.After(t.ConfirmBy):
		return fmt.Sprintf("not confirmed within %s (braid confirm)", d.ConfirmWithin)
	case len(still) == 0 && (t.ConfirmBy.IsZero() || t.Confirmed):
		d.Log.Info("change accepted", "revision", t.Revision)
		d.trial, d.status.Trial = nil, nil
		d.saveGood()
	}
	return ""
}

// revert goes back to the revision before the trial and quarantines the
// trial's revision.
func (d *Daemon) revert(reason string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	t := d.trial
	if t == nil {
		return
	}
	d.trial, d.status.Trial = nil, nil
	q := Quarantined{Revision: t.Revision, Reason: reason, At: d.Now()}
	d.status.Quarantined = append(d.status.Quarantined, q)
	d.status.SpecError, d.status.RejectedRev = quarantineMessage(q), q.Revision
	d.doc, d.good = t.prev, t.prevRev
	d.status.Revision = t.prevRev.ID
	d.Log.Error("reverting the change", "revision", t.Revision, "back to", t.prevRev.ID, "reason", reason)
	d.saveGood()
	d.Trigger("revert")
}

func quarantineMessage(q Quarantined) string {
	return fmt.Sprintf("revision %s is quarantined: it was reverted at %s because %s; change the spec to try again", q.Revision, q.At.Format(time.RFC3339), q.Reason)
}

// quarantined reports whether a revision was reverted.
func (d *Daemon) quarantined(id string) (Quarantined, bool) {
	for _, q := range d.status.Quarantined {
		if q.Revision == id {
			return q, true
		}
	}
	return Quarantined{}, false
}

// goodState is what the daemon persists so that a restart neither applies
// a quarantined revision nor forgets the last good one.
type goodState struct {
	Revision    string        `json:"revision"`
	Name        string        `json:"name"`
	Spec        []byte        `json:"spec"`
	Quarantined []Quarantined `json:"quarantined,omitempty"`
}

const goodFile = "last-good.json"

// saveGood persists the last good spec and the quarantine. Called with
// d.mu held.
func (d *Daemon) saveGood() {
	if d.StateDir == "" || d.doc == nil {
		return
	}
	b, err := json.Marshal(goodState{Revision: d.good.ID, Name: d.good.Name, Spec: d.good.Data, Quarantined: d.status.Quarantined})
	if err == nil {
		err = atomicfile.Write(filepath.Join(d.StateDir, goodFile), b, 0o600)
	}
	if err == nil && d.noGoodWarning != "" {
		d.status.Warnings = slices.DeleteFunc(d.status.Warnings, func(w string) bool { return w == d.noGoodWarning })
		d.noGoodWarning = ""
	}
	if err != nil {
		d.Log.Error("could not persist the last good spec", "err", err)
	}
}

// restoreGood loads the persisted last good spec and quarantine.
func (d *Daemon) restoreGood() {
	if d.StateDir == "" {
		return
	}
	path := filepath.Join(d.StateDir, goodFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	var g goodState
	var doc *api.Document
	if err == nil {
		g, doc, err = decodeGood(b)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		// No fallback: the daemon converges the first revision it reads,
		// and says so until then.
		w := fmt.Sprintf("%s is unreadable (%v): there is no last good spec to fall back on, and no quarantine, until a revision is applied", path, err)
		d.Log.Warn("ignoring the persisted last good spec", "err", w)
		d.status.Warnings = append(d.status.Warnings, w)
		d.noGoodWarning = w
		return
	}
	d.doc, d.good = doc, source.Revision{ID: g.Revision, Name: g.Name, Data: g.Spec}
	d.status.Quarantined = g.Quarantined
	d.status.Revision = g.Revision
}

// decodeGood reads the persisted last good spec: its JSON, then the spec
// it holds, which must still parse.
func decodeGood(b []byte) (goodState, *api.Document, error) {
	var g goodState
	if err := json.Unmarshal(b, &g); err != nil {
		return goodState{}, nil, err
	}
	if g.Revision == "" || len(g.Spec) == 0 {
		return goodState{}, nil, errors.New("no revision or no spec in it")
	}
	doc, err := api.Parse(g.Name, g.Spec)
	if err != nil {
		return goodState{}, nil, fmt.Errorf("its spec no longer parses: %w", err)
	}
	return g, doc, nil
}
