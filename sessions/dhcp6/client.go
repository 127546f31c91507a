package dhcp6

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"time"

	"github.com/braid-router/braid/facts"
	"github.com/braid-router/braid/session"
	"github.com/braid-router/braid/sessions/dhcp6/rfc8415"
)

// linkCheck is how often the client looks at its link (there, up, with
// carrier and the same link-local address) while it runs, and for the
// link while it waits.
const linkCheck = time.Second

// releaseWait bounds how long a client leaving the spec waits for its
// server's Reply to a Release: the supervisor stops a session within 5 s.
const releaseWait = 3 * time.Second

// Client is the dhcp6 session: one link's DHCPv6 prefix delegation
// client. It holds no state between runs but its DUID (see DUID): a run
// starts from the delegation in its facts slot, if any, and rebinds it
// (RFC 8415 section 18.2.12), so a restart of braid keeps the prefix.
type Client struct {
	// StateDir is braid's state directory, where a DUID-LLT is kept when
	// the client has no Ethernet address to make a DUID-LL of.
	StateDir string
}

// Run implements session.Session. It runs the client until ctx ends;
// when the session left the spec (session.ErrRemoved), it releases its
// delegation first. It never releases on a restart or when braid stops:
// the delegation and what the LAN made of it outlive the process.
func (c *Client) Run(ctx context.Context, cfg Config, env *session.Env) error {
	var seed [8]byte
	rand.Read(seed[:])
	r := &run{cfg: cfg, env: env, log: env.Log(), iaid: IAID(cfg.For), seed: binary.LittleEndian.Uint64(seed[:])}
	r.lease = r.persisted()
	for ctx.Err() == nil {
		if r.id.DUID == nil {
			// A DUID-LL is the link's address: once the link is there.
			if cfg.DUIDLink != "" {
				if _, err := net.InterfaceByName(cfg.DUIDLink); err != nil {
					r.waiting(ctx, fmt.Sprintf("link %s, whose address makes the DUID: %v", cfg.DUIDLink, err))
					continue
				}
			}
			d, err := DUID(cfg.DUIDLink, c.StateDir)
			if err != nil {
				return err
			}
			r.id = rfc8415.Identity{DUID: d, IAID: r.iaid}
			r.log.Info("DHCPv6 client identity", "duid", rfc8415.DUIDString(d.ToBytes()), "iaid", hex.EncodeToString(r.iaid[:]))
		}
		l, err := openLink(ctx, cfg.Interface)
		if err != nil {
			r.waiting(ctx, err.Error())
			continue
		}
		err = r.serve(ctx, l)
		l.close()
		if err != nil {
			r.log.Info("asking again once the link is back", "why", err)
		}
	}
	return nil
}

// run is one run of the session.
type run struct {
	cfg  Config
	env  *session.Env
	log  *slog.Logger
	iaid [4]byte
	id   rfc8415.Identity
	seed uint64
	// lease is the delegation held, whatever the link does; nil when none.
	lease *rfc8415.Lease
	m     rfc8415.Client
}

// waiting reports what the client waits for, with the delegation it still
// holds, and waits a link check's time.
func (r *run) waiting(ctx context.Context, why string) {
	detail := "no prefix delegated: " + why
	if l := r.lease; l != nil && l.Holds() && (l.End().IsZero() || time.Now().Before(l.End())) {
		detail = fmt.Sprintf("%s; holds %s until %s", why, l.Prefixes[0].Prefix, until(l.End()))
	}
	r.env.SetState(session.Waiting, detail)
	t := time.NewTimer(linkCheck)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// until renders the end of a lifetime.
func until(t time.Time) string {
	if t.IsZero() {
		return "forever"
	}
	return t.Local().Format(time.DateTime)
}

// serve runs the client on an open link until ctx ends (nil) or the link
// changes (an error saying how). Each time the link is opened the client
// starts again from what it holds: rebinding it, or soliciting.
func (r *run) serve(ctx context.Context, l *link) error {
	rx := make(chan received, 16)
	done := make(chan struct{})
	defer close(done)
	go l.read(rx, done)

	r.seed++
	r.m = rfc8415.New(r.id, r.cfg.Timing, r.seed)
	if r.lease != nil {
		r.log.Info("rebinding the delegation held before", "prefix", r.lease.Prefixes[0].Prefix, "server", rfc8415.DUIDString(r.lease.Server))
	}
	r.step(l, rfc8415.Start{Lease: r.lease})
	check := time.NewTicker(linkCheck)
	defer check.Stop()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		timer.Stop()
		var tc <-chan time.Time
		if d := r.m.Deadline(); !d.IsZero() {
			timer.Reset(max(time.Until(d), 0))
			tc = timer.C
		}
		select {
		case <-ctx.Done():
			if context.Cause(ctx) == session.ErrRemoved {
				r.release(l, rx)
			}
			return nil
		case <-check.C:
			if err := l.check(); err != nil {
				return err
			}
			r.report()
		case <-tc:
			r.step(l, rfc8415.Timeout{})
		case m := <-rx:
			if m.err != nil {
				return fmt.Errorf("read from %s: %w", l.ifi.Name, m.err)
			}
			r.log.Debug("received", "message", m.msg.Type().String(), "from", m.src, "xid", m.msg.TransactionID.String())
			r.step(l, rfc8415.Receive{Msg: m.msg})
		}
	}
}

// release gives the delegation back (the session left the spec) and
// waits a little for the server's Reply, or until the client has sent
// every Release it would.
func (r *run) release(l *link, rx <-chan received) {
	r.step(l, rfc8415.Release{})
	end := time.NewTimer(releaseWait)
	defer end.Stop()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for r.m.Phase() == rfc8415.Releasing {
		timer.Stop()
		if d := r.m.Deadline(); !d.IsZero() {
			timer.Reset(max(time.Until(d), 0))
		}
		select {
		case <-end.C:
			r.log.Info("no Reply to the Release; leaving anyway")
			return
		case <-timer.C:
			r.step(l, rfc8415.Timeout{})
		case m := <-rx:
			if m.err != nil {
				return
			}
			r.step(l, rfc8415.Receive{Msg: m.msg})
		}
	}
	r.log.Info("delegation released")
}

// step feeds ev to the client, carries out its actions, and reports its
// state.
func (r *run) step(l *link, ev rfc8415.Event) {
	before := r.m.Phase()
	var acts []rfc8415.Action
	r.m, acts = r.m.Step(ev, time.Now())
	for _, a := range acts {
		r.do(l, a)
	}
	if p := r.m.Phase(); p != before {
		r.log.Debug("DHCPv6 client state", "from", before.String(), "to", p.String())
	}
	r.report()
}

// report sets the session's state: running while it holds a delegation,
// waiting (for a prefix) while it does not.
func (r *run) report() {
	state := session.Waiting
	if _, ok := r.m.Lease(); ok {
		state = session.Running
	}
	r.env.SetState(state, r.m.Describe(time.Now()))
}

// do carries out one action of the client.
func (r *run) do(l *link, a rfc8415.Action) {
	switch a := a.(type) {
	case rfc8415.Send:
		r.log.Debug("sending", "message", a.Msg.Type().String(), "xid", a.Msg.TransactionID.String())
		if err := l.send(a.Msg); err != nil {
			// Lost like a datagram: the client sends again when its
			// timer says so.
			r.log.Warn("DHCPv6 message not sent", "err", err)
		}
	case rfc8415.Bind:
		ls := a.Lease
		r.lease = &ls
		for _, p := range ls.Prefixes {
			r.log.Info("delegated prefix", "prefix", p.Prefix, "preferred", until(p.Preferred), "valid", until(p.Valid),
				"server", rfc8415.DUIDString(ls.Server), "dns", ls.DNS, "renew", until(ls.Renew))
		}
		if err := r.env.Publish(factsOf(r.cfg, r.iaid, ls)...); err != nil {
			r.log.Error("publishing the delegated prefix", "err", err)
		}
	case rfc8415.Unbind:
		r.lease = nil
		r.log.Warn("delegation lost", "why", a.Why)
		if err := r.env.Publish(); err != nil {
			r.log.Error("withdrawing the delegated prefix", "err", err)
		}
	}
}

// factsOf is a delegation as facts: one per prefix, each expiring with
// its valid lifetime and surviving a restart.
func factsOf(cfg Config, iaid [4]byte, l rfc8415.Lease) []facts.Fact {
	var fs []facts.Fact
	for _, p := range l.Prefixes {
		fs = append(fs, facts.Fact{Prefix: &facts.Prefix{
			For: cfg.For, Prefix: p.Prefix, Link: cfg.Interface, Preferred: p.Preferred.Round(0),
			DNS: slices.Clone(l.DNS), Server: rfc8415.DUIDString(l.Server), IAID: hex.EncodeToString(iaid[:]),
			Obtained: l.Obtained.Round(0), Renew: l.Renew.Round(0), Rebind: l.Rebind.Round(0),
		}, Expires: p.Valid.Round(0)})
	}
	return fs
}

// persisted returns the delegation in the session's own facts slot that
// is this client's (the same link and IAID) and has not expired: the one
// it held before a restart.
func (r *run) persisted() *rfc8415.Lease {
	var l rfc8415.Lease
	now := time.Now()
	for _, f := range r.env.Facts().Slots[r.env.ID()].Facts {
		p := f.Prefix
		if p == nil || p.For != r.cfg.For || p.Link != r.cfg.Interface || p.IAID != hex.EncodeToString(r.iaid[:]) ||
			(!f.Expires.IsZero() && !now.Before(f.Expires)) {
			continue
		}
		server, err := hex.DecodeString(p.Server)
		if err != nil || len(server) == 0 {
			continue
		}
		l.Prefixes = append(l.Prefixes, rfc8415.Prefix{Prefix: p.Prefix, Preferred: p.Preferred, Valid: f.Expires})
		l.Server, l.DNS, l.Obtained, l.Renew, l.Rebind = server, slices.Clone(p.DNS), p.Obtained, p.Renew, p.Rebind
	}
	if !l.Holds() {
		return nil
	}
	return &l
}
