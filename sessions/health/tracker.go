package health

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/braid-router/braid/api"
	"github.com/braid-router/braid/facts"
	"github.com/braid-router/braid/probe"
	"github.com/braid-router/braid/session"
	"github.com/braid-router/braid/sessions/health/verdict"
)

// Tracker is the health session of one uplink: every Interval it sends a
// round of probes out of the uplink alone (bound to its interface and to
// its address of each target's family), watches the link's carrier
// through rtnetlink, feeds both to the state machine (package verdict),
// and publishes the verdict as the uplink's health fact, bound to the
// process. Every transition is one log line and a call of OnTransition;
// the verdict, its reason, and the recent rounds' loss and round-trip
// times are the session's status.
//
// A Tracker takes a new configuration in place (sources, probes,
// thresholds, timing), except a new interface, which restarts it.
type Tracker struct {
	// OnTransition, if set, is called on every change of verdict, with
	// the uplink's name: the daemon's metrics count them.
	OnTransition func(uplink string, tr verdict.Transition)

	mu   sync.Mutex
	cfg  Config
	kick chan struct{}
}

// Run implements session.Session.
func (t *Tracker) Run(ctx context.Context, cfg Config, env *session.Env) error {
	t.mu.Lock()
	t.cfg = cfg
	if t.kick == nil {
		t.kick = make(chan struct{}, 1)
	}
	kick := t.kick
	t.mu.Unlock()

	links, stopLinks, err := subscribeLinks()
	if err != nil {
		return err
	}
	defer stopLinks()
	carrier, err := carrierOf(cfg.Interface)
	if err != nil {
		return err
	}
	log := env.Log().With("uplink", cfg.Uplink, "interface", cfg.Interface)
	st := verdict.New(params(cfg), carrier, time.Now())
	if err := t.publish(env, cfg.Uplink, st.Healthy); err != nil {
		return err
	}
	log.Info("uplink health", "verdict", direction(st.Healthy), "reason", st.Reason)
	env.SetState(session.Running, st.Describe(time.Now()))

	var wg sync.WaitGroup
	defer wg.Wait()
	rctx, cancelRounds := context.WithCancel(ctx)
	defer cancelRounds()
	apply := func(e verdict.Event) error {
		now := time.Now()
		var tr *verdict.Transition
		st, tr = verdict.Step(st, e, now)
		if tr != nil {
			stats := st.Stats()
			log.Info("uplink health", "verdict", tr.Direction(), "reason", tr.Reason,
				"loss", fmt.Sprintf("%.0f%%", 100*stats.Loss), "rtt", stats.MedianRTT, "rounds", stats.Rounds)
			if err := t.publish(env, cfg.Uplink, tr.Healthy); err != nil {
				return err
			}
			if t.OnTransition != nil {
				t.OnTransition(cfg.Uplink, *tr)
			}
		}
		env.SetState(session.Running, st.Describe(now))
		return nil
	}

	// Rounds start every interval. One whose timeout equals the interval
	// ends just as the next is due: that one starts as soon as its result
	// is in, never skipped, so rounds never overlap.
	results := make(chan verdict.Round, 1)
	inFlight, due := false, false
	startRound := func() {
		if inFlight {
			due = true
			return
		}
		inFlight, due = true, false
		pr, targets, timeout := prober(cfg), targetsOf(cfg.Probes), cfg.Timeout
		wg.Go(func() { results <- round(rctx, pr, targets, timeout) })
	}
	tick := time.NewTicker(cfg.Interval)
	defer tick.Stop()
	// silence fires at the state's deadline: no answer for failAfter x
	// interval.
	silence := time.NewTimer(time.Hour)
	defer silence.Stop()
	armSilence := func() {
		if d := st.Deadline(); !d.IsZero() {
			silence.Reset(time.Until(d))
		} else {
			silence.Stop()
		}
	}
	armSilence()
	startRound()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			startRound()
		case <-silence.C:
			if err := apply(verdict.Tick{}); err != nil {
				return err
			}
			armSilence()
		case r := <-results:
			inFlight = false
			if err := apply(r); err != nil {
				return err
			}
			armSilence()
			if due {
				startRound()
			}
		case u, ok := <-links:
			if !ok {
				return errors.New("link notifications ended")
			}
			if u.Attrs().Name != cfg.Interface {
				continue
			}
			up := u.Header.Type != unix.RTM_DELLINK && u.Attrs().RawFlags&unix.IFF_LOWER_UP != 0
			if err := apply(verdict.Carrier{Up: up}); err != nil {
				return err
			}
			armSilence()
		case <-kick:
			t.mu.Lock()
			next := t.cfg
			t.mu.Unlock()
			if next.Interval != cfg.Interval {
				tick.Reset(next.Interval)
			}
			cfg = next
			st = st.WithParams(params(cfg))
			armSilence()
			log.Info("uplink health: new configuration in place", "sources", cfg.Sources, "probes", len(cfg.Probes))
		}
	}
}

// Update implements session.Updater: everything but the interface changes
// in place (a new lease's address as the source, other probes or timing).
func (t *Tracker) Update(cfg Config) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if cfg.Interface != t.cfg.Interface || cfg.Uplink != t.cfg.Uplink || t.kick == nil {
		return session.ErrRestart
	}
	t.cfg = cfg
	select {
	case t.kick <- struct{}{}:
	default:
	}
	return nil
}

// publish replaces the session's fact with the uplink's verdict. It holds
// only while this process runs: after a restart the uplink is judged anew.
func (t *Tracker) publish(env *session.Env, uplink string, healthy bool) error {
	return env.Publish(facts.Fact{Health: &facts.Health{Uplink: uplink, Healthy: healthy}, Process: true})
}

func direction(healthy bool) string {
	return verdict.Transition{Healthy: healthy}.Direction()
}

func params(cfg Config) verdict.Params {
	return verdict.Params{FailAfter: cfg.FailAfter, RecoverAfter: cfg.RecoverAfter, Interval: cfg.Interval}
}

// prober binds probes to the uplink: its interface, its addresses, and a
// refused TCP connection counts (the path to the far end works).
func prober(cfg Config) *probe.Prober {
	return &probe.Prober{Interface: cfg.Interface, Sources: cfg.Sources, RefusedAnswers: true}
}

// targetsOf turns the spec's probes into probe targets.
func targetsOf(ps []api.Probe) []probe.Target {
	out := make([]probe.Target, 0, len(ps))
	for _, p := range ps {
		switch {
		case p.ICMP != "":
			out = append(out, probe.Target{Kind: probe.ICMP, Addr: p.ICMP})
		case p.TCP != "":
			out = append(out, probe.Target{Kind: probe.TCP, Addr: p.TCP})
		case p.DNS != "":
			out = append(out, probe.Target{Kind: probe.DNS, Addr: p.DNS, Name: p.Name})
		}
	}
	return out
}

// round sends every probe at once and waits, at most timeout, for the
// first answer: the round succeeds then, and the other probes are called
// off. It fails when every probe has failed, or at the timeout; when none
// could even be sent (no source address of its family yet, the link down:
// probe.Unsent), it is Unsent, which the verdict takes as no evidence.
func round(ctx context.Context, pr *probe.Prober, targets []probe.Target, timeout time.Duration) verdict.Round {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	type answer struct {
		target probe.Target
		err    error
		rtt    time.Duration
	}
	answers := make(chan answer, len(targets))
	for _, tg := range targets {
		go func() {
			err := pr.Probe(ctx, tg)
			answers <- answer{tg, err, time.Since(start)}
		}()
	}
	var errs []string
	sent := false
	for range targets {
		a := <-answers
		if a.err == nil {
			return verdict.Round{OK: true, RTT: a.rtt, Detail: fmt.Sprintf("%s answered in %s", a.target, a.rtt.Round(time.Microsecond))}
		}
		errs = append(errs, a.err.Error())
		sent = sent || !probe.Unsent(a.err)
	}
	if len(targets) == 0 {
		return verdict.Round{Detail: "no probes"}
	}
	return verdict.Round{Unsent: !sent, Detail: strings.Join(errs, "; ")}
}

// subscribeLinks subscribes to the link notifications of the process's
// network namespace. stop ends the subscription and waits until its
// goroutine is gone.
func subscribeLinks() (<-chan netlink.LinkUpdate, func(), error) {
	ch := make(chan netlink.LinkUpdate, 16)
	done := make(chan struct{})
	if err := netlink.LinkSubscribeWithOptions(ch, done, netlink.LinkSubscribeOptions{}); err != nil {
		return nil, nil, fmt.Errorf("subscribe to link notifications: %w", err)
	}
	return ch, func() {
		close(done)
		for range ch { // closed when the library's goroutine ends
		}
	}, nil
}

// carrierOf reads the link's carrier (IFF_LOWER_UP); a missing link has
// none.
func carrierOf(name string) (bool, error) {
	l, err := netlink.LinkByName(name)
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read link %s: %w", name, err)
	}
	return l.Attrs().RawFlags&unix.IFF_LOWER_UP != 0, nil
}
