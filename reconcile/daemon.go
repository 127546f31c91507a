package reconcile

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/braid-router/braid/api"
	"github.com/braid-router/braid/facts"
	"github.com/braid-router/braid/probe"
	"github.com/braid-router/braid/reconcile/plan"
	"github.com/braid-router/braid/resolve"
	"github.com/braid-router/braid/session"
	"github.com/braid-router/braid/source"
)

// KernelWatcher delivers the kernel's change notifications.
type KernelWatcher interface {
	Run(ctx context.Context, changed func()) error
	// Drain discards what is queued now.
	Drain() bool
}

// LinkWatcher keeps the facts about the kernel links a spec names current
// (package drivers/links): whether each is there, its MAC address and its
// carrier.
type LinkWatcher interface {
	// Watch makes names the links watched, and publishes what they are
	// now before it returns.
	Watch(names []string) error
	// Run publishes their changes as the kernel reports them, until ctx
	// ends.
	Run(ctx context.Context) error
}

// Daemon converges continuously: at start, and whenever the spec, the
// kernel or the facts change, on a periodic full pass, and when a polled
// driver (one whose objects the kernel sends no events for) drifts.
// Every pass recomputes everything. A failed pass is retried with backoff;
// the daemon never exits because a pass failed.
type Daemon struct {
	Engine *Engine
	Source source.Source
	// Kernel, if set, triggers a pass on every kernel change that braid's
	// own writes did not cause.
	Kernel KernelWatcher
	// Compile turns a document and the facts into the desired state.
	Compile func(*api.Document, facts.Set) (Desired, error)
	// Facts, if set, holds the facts; each change triggers a pass.
	Facts *facts.Hub
	// Links, if set, publishes into Facts what the kernel has of the links
	// the spec names: before every pass, with the links of the spec it
	// compiles, and whenever the kernel reports a change of link. A
	// missing link then waits (see compile) instead of failing every
	// pass, and is configured by the pass that follows its appearance.
	Links LinkWatcher
	// Supervisor, if set, runs the sessions the desired state names,
	// after every pass.
	Supervisor *Supervisor
	// Resolvers, if set, is given the resolvers of braid's own name
	// lookups after every compile (the uplinks' learnt resolvers).
	Resolvers *resolve.Dialer
	// Interval is the periodic full pass (default 1 minute).
	Interval time.Duration
	// Polled names the drivers whose objects are polled for drift, every
	// PollInterval (default 2 s).
	Polled       []string
	PollInterval time.Duration
	// Debounce gathers a burst of triggers into one pass (default 20 ms).
	Debounce time.Duration
	Log      *slog.Logger

	// ConfirmWithin, when positive, makes every new revision a trial that
	// is reverted unless Confirm is called within this long.
	ConfirmWithin time.Duration
	// ProbeWindow is how long the targets that answered before a new
	// revision (management probes, the aggregation peer) have to answer
	// again before it is reverted (default 60 s).
	ProbeWindow time.Duration
	// ProbeInterval is how often a trial's targets are probed (default 1 s)
	// and ProbeTimeout bounds each probe (default 2 s).
	ProbeInterval time.Duration
	ProbeTimeout  time.Duration
	// Prober checks a target (default: probe.Prober's Probe, unbound,
	// with a refused TCP connection not an answer).
	Prober Prober
	// StateDir persists the last good spec and the quarantine.
	StateDir string
	// OnPass, if set, is called after every pass with its status (metrics);
	// it runs on the daemon's goroutine, without its lock.
	OnPass func(PassStatus, Status)
	// Now and After are the clock of trials and retries (default time.Now
	// and time.After); tests replace them.
	Now   func() time.Time
	After func(time.Duration) <-chan time.Time

	triggers chan string
	busy     atomic.Bool
	// factsC tells of changes of the facts; resources are the desired
	// resources of the last pass, which tell a change of facts that moved
	// the desired state from one that did not (both are the daemon
	// goroutine's own).
	factsC    <-chan struct{}
	resources []plan.Resource

	mu     sync.Mutex
	status Status
	// bound are the process-bound objects the daemon keeps now.
	bound []string
	// rev is the last revision loaded; good the last valid one, doc its
	// parsed spec.
	rev  source.Revision
	good source.Revision
	doc  *api.Document
	// trial is the revision on probation, if any.
	trial *Trial
	// specPending is set from a spec trigger until a load succeeds.
	specPending bool
	// unsaved is set when a new good revision has not been persisted yet.
	unsaved bool
	// noGoodWarning is the warning about an unreadable last good spec,
	// until a new one is saved.
	noGoodWarning string
	// warned are the keys of the plan warnings of the last pass that had
	// a plan, each logged once when it appeared.
	warned map[string]bool
}

// Status is what `braid status` shows.
type Status struct {
	Source string `json:"source"`
	// Revision is the revision being converged (the last valid one).
	Revision string `json:"revision,omitempty"`
	// SpecError is why the newest revision is not applied, if it is not.
	SpecError   string      `json:"specError,omitempty"`
	RejectedRev string      `json:"rejectedRevision,omitempty"`
	LastPass    *PassStatus `json:"lastPass,omitempty"`
	Passes      uint64      `json:"passes"`
	// Applying counts passes that changed something; Repairs those among
	// them that no spec or fact change explains (drift repaired).
	Applying uint64 `json:"applyingPasses"`
	Repairs  uint64 `json:"repairs"`
	Failures uint64 `json:"failedPasses"`
	// Triggered counts the passes each trigger started (spec, kernel,
	// periodic, reload, ...); a pass with two triggers counts for both.
	// Unlike LastPass, a pass is never hidden by the next one.
	Triggered map[string]uint64 `json:"triggered,omitempty"`
	// Trial is the revision on probation, awaiting confirmation or probes.
	Trial *Trial `json:"trial,omitempty"`
	// Warnings are conditions a person should know of: state files that
	// could not be read, and what braid did about it.
	Warnings []string `json:"warnings,omitempty"`
	// Quarantined lists reverted revisions, never applied again.
	Quarantined []Quarantined    `json:"quarantined,omitempty"`
	Sessions    []session.Status `json:"sessions,omitempty"`
	Objects     []plan.Status    `json:"objects"`
	Conflicts   []plan.Conflict  `json:"conflicts"`
	Notes       []plan.Note      `json:"notes"`
	// PlanWarnings are what defeats the spec beside braid's objects at
	// the last pass (another firewall dropping what braid lets through),
	// while they hold.
	PlanWarnings []plan.Warning `json:"planWarnings,omitempty"`
	Facts        FactsStatus    `json:"facts"`
	// Resolvers are where braid's own name lookups go: the uplinks'
	// learnt resolvers, or none (the system's configuration).
	Resolvers []string `json:"resolvers,omitempty"`
}

// FactsStatus is the facts as status shows them: every fact with its
// producer and expiry.
type FactsStatus struct {
	Version uint64        `json:"version"`
	Entries []facts.Entry `json:"entries,omitempty"`
}

// PassStatus describes one pass.
type PassStatus struct {
	Start    time.Time     `json:"start"`
	Duration time.Duration `json:"duration"`
	Triggers []string      `json:"triggers"`
	Changes  int           `json:"changes"`
	Result   string        `json:"result"`
	Error    string        `json:"error,omitempty"`
}

// Pass results.
const (
	ResultConverged = "converged"
	ResultWaiting   = "waiting"
	ResultFailed    = "error"
)

func (d *Daemon) defaults() {
	if d.Interval <= 0 {
		d.Interval = time.Minute
	}
	if d.PollInterval <= 0 {
		d.PollInterval = 2 * time.Second
	}
	if d.Debounce <= 0 {
		d.Debounce = 20 * time.Millisecond
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.ProbeWindow <= 0 {
		d.ProbeWindow = time.Minute
	}
	if d.ProbeInterval <= 0 {
		d.ProbeInterval = time.Second
	}
	if d.ProbeTimeout <= 0 {
		d.ProbeTimeout = 2 * time.Second
	}
	if d.Prober == nil {
		d.Prober = (&probe.Prober{}).Probe
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.After == nil {
		d.After = time.After
	}
	d.triggers = make(chan string, 64)
}

// Trigger asks for a pass (SIGHUP: "reload" re-reads the spec).
func (d *Daemon) Trigger(reason string) {
	select {
	case d.triggers <- reason:
	default: // a pass is already pending
	}
}

// Status returns a copy of the daemon's status.
func (d *Daemon) Status() Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.status
	s.Objects = slices.Clone(s.Objects)
	s.Warnings = slices.Clone(s.Warnings)
	s.Quarantined = slices.Clone(s.Quarantined)
	s.Triggered = maps.Clone(s.Triggered)
	if d.trial != nil {
		t := *d.trial
		t.Waiting = slices.Clone(t.Waiting)
		s.Trial = &t
	}
	if d.Supervisor != nil {
		s.Sessions = d.Supervisor.Status()
	}
	f := d.CurrentFacts()
	s.Facts = FactsStatus{Version: f.Version, Entries: f.Entries()}
	if d.Resolvers != nil {
		for _, r := range d.Resolvers.Servers() {
			s.Resolvers = append(s.Resolvers, r.String())
		}
	}
	return s
}

// CurrentFacts returns the facts the daemon converges with.
func (d *Daemon) CurrentFacts() facts.Set {
	if d.Facts == nil {
		return facts.Set{}
	}
	return d.Facts.Set()
}

// LiveSessions lists the sessions the daemon runs, as the plan compares
// them (a CLI plan diffs its desired sessions against these).
func (d *Daemon) LiveSessions() []plan.Resource {
	if d.Supervisor == nil {
		return nil
	}
	return d.Supervisor.Live()
}

// Run converges until ctx ends.
func (d *Daemon) Run(ctx context.Context) error {
	d.defaults()
	d.mu.Lock()
	d.status.Source = d.Source.String()
	d.mu.Unlock()
	d.restoreGood()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		if err := d.Source.Watch(ctx, func() { d.Trigger("spec") }); err != nil && ctx.Err() == nil {
			d.Log.Error("watching the spec failed; only periodic passes will see changes", "source", d.Source.String(), "err", err)
		}
	}()
	if d.Links != nil {
		go func() {
			if err := d.Links.Run(ctx); err != nil && ctx.Err() == nil {
				d.Log.Error("watching the links failed; a link that appears or goes is seen by the next pass", "err", err)
			}
		}()
	}
	if d.Kernel != nil {
		go func() {
			err := d.Kernel.Run(ctx, func() {
				if !d.busy.Load() {
					d.Trigger("kernel")
				}
			})
			if err != nil && ctx.Err() == nil {
				d.Log.Error("watching the kernel failed; only periodic passes will repair drift", "err", err)
			}
		}()
	}
	full := time.NewTicker(d.Interval)
	defer full.Stop()
	var poll <-chan time.Time
	if len(d.Polled) > 0 {
		t := time.NewTicker(d.PollInterval)
		defer t.Stop()
		poll = t.C
	}
	if d.Facts != nil {
		ch, unsubscribe := d.Facts.Subscribe()
		defer unsubscribe()
		d.factsC = ch
	}
	if d.Supervisor != nil {
		d.Supervisor.OnRunning = func() { d.Trigger("sessions") }
	}
	defer d.stop()
	trialTick := time.NewTicker(d.ProbeInterval)
	defer trialTick.Stop()
	var retry <-chan time.Time
	backoff, reran := time.Duration(0), false
	reasons := []string{"start", "spec"}
	for {
		if len(reasons) > 0 {
			reasons = d.debounce(ctx, reasons)
			if ctx.Err() != nil {
				return nil
			}
			err := d.pass(ctx, reasons)
			reasons = nil
			var verr *VerifyError
			switch {
			case err == nil:
				backoff, retry, reran = 0, nil, false
			case errors.As(err, &verr) && !reran:
				// Something changed during the pass (a change by hand
				// while it applied): one more pass at once, not after a
				// backoff. A change that keeps not taking backs off.
				reran = true
				d.Log.Info("the state moved during the pass; converging again", "err", err)
				reasons = []string{"verify"}
				continue
			default:
				reran = false
				backoff = nextBackoff(backoff, time.Second, time.Minute)
				d.Log.Warn("pass failed; retrying", "in", backoff, "err", err)
				retry = d.After(backoff)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case r := <-d.triggers:
			reasons = append(reasons, r)
		case <-d.factsC:
			reasons = append(reasons, "facts")
		case <-full.C:
			reasons = append(reasons, "periodic")
		case <-retry:
			reasons = append(reasons, "retry")
		case <-poll:
			if d.drifted(ctx) {
				reasons = append(reasons, "poll")
			}
		case <-trialTick.C:
			if why := d.checkTrial(ctx); why != "" {
				d.revert(why)
			}
		}
	}
}

// debounce gathers the triggers that arrive within the debounce window.
func (d *Daemon) debounce(ctx context.Context, reasons []string) []string {
	t := time.NewTimer(d.Debounce)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return reasons
		case r := <-d.triggers:
			reasons = append(reasons, r)
		case <-t.C:
			slices.Sort(reasons)
			return slices.Compact(reasons)
		}
	}
}

// load reads the spec if a trigger says it may have changed, and keeps the
// last valid one when the new one is invalid or quarantined. It reports a
// new revision replacing an earlier good one (a trial candidate), with that
// earlier one.
func (d *Daemon) load(ctx context.Context, reasons []string) (fresh bool, prev *api.Document, prevRev source.Revision, err error) {
	if slices.Contains(reasons, "spec") || slices.Contains(reasons, "reload") {
		d.specPending = true
	}
	if d.rev.ID != "" && !d.specPending {
		return false, nil, source.Revision{}, nil
	}
	rev, err := d.Source.Load(ctx)
	if err != nil {
		// Pending until a load succeeds: the next pass (a retry) reads
		// again, even if the source does not say twice that it changed.
		err = fmt.Errorf("read the spec from %s: %w", d.Source, err)
		d.mu.Lock()
		d.status.SpecError, d.status.RejectedRev = err.Error(), ""
		d.mu.Unlock()
		return false, nil, source.Revision{}, err
	}
	d.specPending = false
	if rev.ID == "" {
		sum := sha256.Sum256(rev.Data)
		rev.ID = hex.EncodeToString(sum[:8])
	}
	if rev.ID == d.rev.ID {
		d.mu.Lock()
		if d.status.RejectedRev == "" {
			d.status.SpecError = "" // a read error, now gone
		}
		d.mu.Unlock()
		return false, nil, source.Revision{}, nil
	}
	d.rev = rev
	d.mu.Lock()
	defer d.mu.Unlock()
	if rev.ID == d.good.ID {
		d.status.SpecError, d.status.RejectedRev = "", ""
		return false, nil, source.Revision{}, nil
	}
	if q, ok := d.quarantined(rev.ID); ok {
		d.status.SpecError, d.status.RejectedRev = quarantineMessage(q), rev.ID
		if d.doc == nil {
			return false, nil, source.Revision{}, errors.New(d.status.SpecError)
		}
		return false, nil, source.Revision{}, nil
	}
	doc, err := api.Parse(rev.Name, rev.Data)
	if err != nil {
		d.status.SpecError, d.status.RejectedRev = err.Error(), rev.ID
		if d.doc != nil {
			d.Log.Error("the new spec is invalid; keeping the last good one", "revision", rev.ID, "kept", d.good.ID, "err", err)
			return false, nil, source.Revision{}, nil
		}
		return false, nil, source.Revision{}, err
	}
	prev, prevRev = d.doc, d.good
	if d.trial != nil {
		// A newer revision during a trial: the fallback stays the last
		// accepted one.
		prev, prevRev = d.trial.prev, d.trial.prevRev
		d.trial, d.status.Trial = nil, nil
	}
	d.doc, d.good = doc, rev
	d.unsaved = true
	d.status.Revision, d.status.SpecError, d.status.RejectedRev = rev.ID, "", ""
	d.Log.Info("spec loaded", "source", d.Source.String(), "revision", rev.ID)
	return prev != nil, prev, prevRev, nil
}

// explainsChanges reports whether a trigger explains a pass's changes, so
// that they are not drift repaired: a new spec, the start, a revert, or a
// session starting or stopping (its process-bound objects). New facts
// explain them only when they moved the desired state: a link's carrier,
// which the kernel reports when someone takes the link down by hand, does
// not (see pass).
func explainsChanges(trigger string) bool {
	switch trigger {
	case "spec", "reload", "start", "revert", "sessions":
		return true
	}
	return false
}

// sameResources reports whether two desired states hold the same
// resources in the same states.
func sameResources(a, b []plan.Resource) bool {
	return slices.EqualFunc(a, b, func(x, y plan.Resource) bool {
		return x.Address() == y.Address() && plan.Same(x, y)
	})
}

// pass converges once.
func (d *Daemon) pass(ctx context.Context, reasons []string) (err error) {
	start := time.Now()
	ps := &PassStatus{Start: start, Triggers: reasons}
	var p *Plan
	var res *Result
	// factsMoved reports whether new facts changed the desired state,
	// from the last pass's resources to this one's (compared only for a
	// pass that changed something).
	var lastRes, thisRes []plan.Resource
	factsMoved := func() bool { return slices.Contains(reasons, "facts") && !sameResources(lastRes, thisRes) }
	defer func() {
		ps.Duration = time.Since(start)
		d.mu.Lock()
		defer d.mu.Unlock()
		d.status.Passes++
		if d.status.Triggered == nil {
			d.status.Triggered = make(map[string]uint64)
		}
		for _, r := range reasons {
			d.status.Triggered[r]++
		}
		switch {
		case err != nil:
			ps.Result, ps.Error = ResultFailed, err.Error()
			d.status.Failures++
		default:
			ps.Result = ResultConverged
		}
		if p != nil {
			ps.Changes = len(p.Changes)
			if res == nil {
				res = &Result{}
			}
			d.status.Objects = res.Statuses(p)
			d.status.Conflicts, d.status.Notes = p.Conflicts, p.Notes
			d.status.PlanWarnings = p.Warnings
			d.logWarnings(p.Warnings)
			if len(p.Changes) > 0 {
				d.status.Applying++
				if !slices.ContainsFunc(reasons, explainsChanges) && !factsMoved() {
					d.status.Repairs++
				}
			}
		}
		d.status.LastPass = ps
		d.Log.Info("pass", "triggers", reasons, "changes", ps.Changes, "result", ps.Result, "duration", ps.Duration.Round(time.Microsecond))
		if d.OnPass != nil {
			// Called without the lock, so the hook may call Status.
			snapshot := d.status
			d.mu.Unlock()
			d.OnPass(*ps, snapshot)
			d.mu.Lock()
		}
	}()
	fresh, prev, prevRev, err := d.load(ctx, reasons)
	if err != nil {
		if d.doc == nil {
			return err
		}
		// The source is unreachable (a repository behind the uplinks
		// braid has yet to configure, a deleted file): converge the last
		// good spec, and report the error so the pass is retried.
		d.Log.Error("keeping the last good spec", "revision", d.good.ID, "err", err)
		defer func(loadErr error) {
			if err == nil {
				err = loadErr
			}
		}(err)
	}
	changed, err := d.watchLinks()
	if err != nil {
		return err
	}
	if changed && !slices.Contains(reasons, "facts") {
		// The links changed before a notification of theirs could
		// trigger this pass (the kernel's came first): it compiles them.
		reasons = append(slices.Clone(reasons), "facts")
		slices.Sort(reasons)
		ps.Triggers = reasons
	}
	full, err := d.desired()
	if err != nil {
		return err
	}
	if d.Resolvers != nil {
		d.Resolvers.Set(full.Resolvers)
	}
	// The sessions follow the desired state after every pass, a failed or
	// partial one included: a conflict with a foreign route must never
	// keep the WAN from getting its lease.
	if d.Supervisor != nil {
		defer func() {
			if changes := d.Supervisor.Sync(ctx, full.Sessions); len(changes) > 0 {
				d.Log.Info("sessions", "changes", len(changes))
			}
		}()
	}
	desired := d.keepBound(full)
	lastRes, thisRes = d.resources, desired.Resources
	d.resources = desired.Resources
	// A new revision replacing a good one is a trial when it must be
	// confirmed or when targets answer now that must answer after it.
	var waiting []probe.Target
	if fresh {
		var targets []probe.Target
		if prevDesired, err := d.Compile(prev, d.CurrentFacts()); err == nil {
			targets = prevDesired.Targets
		}
		for _, t := range full.Targets {
			if !slices.Contains(targets, t) {
				targets = append(targets, t)
			}
		}
		waiting = d.baseline(ctx, targets)
		// On trial even if this pass fails: what it applied may be what
		// cuts the box off, and the retries are the same revision.
		defer d.startTrial(d.good, prev, prevRev, waiting)
	}
	if d.unsaved || slices.Contains(reasons, "start") {
		defer func() {
			d.mu.Lock()
			defer d.mu.Unlock()
			if d.trial == nil {
				d.saveGood()
				d.unsaved = false
			}
		}()
	}
	// Kernel events are ignored only while braid itself writes: from the
	// first write until its notifications are drained, just before the
	// final observation (verify), which sees anything else that changed
	// meanwhile. A change during the plan's observation triggers another
	// pass: it may have come after the observation.
	defer d.busy.Store(false)
	p, res, err = d.Engine.Converge(ctx, desired, ConvergeOptions{
		BeforeApply: func(*Plan) error { d.busy.Store(true); return nil },
		BeforeVerify: func() {
			if d.Kernel != nil {
				d.Kernel.Drain()
			}
			d.busy.Store(false)
		},
	})
	if err != nil {
		return err
	}
	if len(p.Conflicts) > 0 {
		return fmt.Errorf("%d conflict(s) with foreign objects, left alone", len(p.Conflicts))
	}
	return nil
}

// logWarnings logs each plan warning once when it appears and once when
// it goes. The caller holds d.mu.
func (d *Daemon) logWarnings(ws []plan.Warning) {
	now := make(map[string]bool, len(ws))
	for _, w := range ws {
		now[w.Key] = true
		if d.warned[w.Key] {
			continue
		}
		args := []any{"warning", w.Message}
		if len(w.Packets) > 0 {
			args = append(args, "packets", w.Packets)
		}
		if len(w.Because) > 0 {
			args = append(args, "uncertain", w.Because)
		}
		if w.Fix != "" {
			args = append(args, "fix", w.Fix)
		}
		d.Log.Warn("something else on this box defeats the spec; braid leaves it alone", args...)
	}
	for k := range d.warned {
		if !now[k] {
			d.Log.Info("no longer defeated", "warning", k)
		}
	}
	d.warned = now
}

// watchLinks tells the link watcher which links the spec names, so that
// the facts this pass compiles with say what the kernel has of them now,
// and reports whether the facts changed since a pass last heard of it.
// That change needs no pass of its own: this one compiles it.
func (d *Daemon) watchLinks() (bool, error) {
	if d.Links == nil {
		return false, nil
	}
	d.mu.Lock()
	doc := d.doc
	d.mu.Unlock()
	if err := d.Links.Watch(doc.Interfaces()); err != nil {
		return false, fmt.Errorf("observe the links: %w", err)
	}
	select {
	case <-d.factsC:
		return true, nil
	default:
		return false, nil
	}
}

// drifted reports whether a polled driver's objects differ from the
// desired state of the last good spec.
func (d *Daemon) drifted(ctx context.Context) bool {
	d.mu.Lock()
	doc := d.doc
	d.mu.Unlock()
	if doc == nil {
		return false
	}
	full, err := d.desired()
	if err != nil {
		return false
	}
	changes, err := d.Engine.PlanDrivers(ctx, d.keepBound(full), d.Polled)
	if err != nil {
		d.Log.Warn("poll failed", "drivers", d.Polled, "err", err)
		return false
	}
	return changes > 0
}

// desired compiles the last good spec with the current facts.
func (d *Daemon) desired() (Desired, error) {
	d.mu.Lock()
	doc, good := d.doc, d.good
	d.mu.Unlock()
	desired, err := d.Compile(doc, d.CurrentFacts())
	if err != nil {
		return Desired{}, fmt.Errorf("compile %s: %w", good.Name, err)
	}
	return desired, nil
}

// keepBound keeps the process-bound objects whose session runs, and
// records which they are (Bound).
func (d *Daemon) keepBound(full Desired) Desired {
	running := func(b plan.ProcessBound) bool {
		return d.Supervisor != nil && (d.Supervisor.Running(b.Owner) || b.Also != "" && d.Supervisor.Running(b.Also))
	}
	desired := full.WithoutProcessBound(running)
	var bound []string
	for _, b := range full.ProcessBound() {
		if running(b) {
			bound = append(bound, b.Address())
		}
	}
	d.mu.Lock()
	d.bound = bound
	d.mu.Unlock()
	return desired
}

// stop ends the sessions and withdraws what only works while braid runs;
// everything else (addresses, routes, rules, NAT, firewall, MPTCP) stays,
// so the router keeps routing.
func (d *Daemon) stop() {
	if d.Supervisor != nil {
		d.Supervisor.StopAll()
	}
	d.mu.Lock()
	doc, bound := d.doc, len(d.bound)
	d.mu.Unlock()
	if doc == nil || bound == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	full, err := d.desired()
	if err == nil {
		var p *Plan
		if p, _, err = d.Engine.Converge(ctx, full.WithoutProcessBound(nil), ConvergeOptions{}); p != nil && len(p.Changes) > 0 {
			d.Log.Info("withdrew what depends on braid's process", "changes", len(p.Changes))
		}
	}
	if err != nil {
		d.Log.Error("withdrawing what depends on braid's process failed", "err", err)
	}
}

// Bound lists the addresses of the process-bound objects the daemon keeps
// now: a CLI plan made while the daemon runs must not count them as
// objects to remove.
func (d *Daemon) Bound() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.bound)
}
