package dhcp4

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"time"

	"github.com/braid-router/braid/facts"
	"github.com/braid-router/braid/session"
	"github.com/braid-router/braid/sessions/dhcp4/rfc2131"
)

// Client is the dhcp4 session: one uplink's DHCPv4 client. It holds no
// state between runs; a run starts from the lease in its facts slot, if
// any (INIT-REBOOT), so that a restart of braid keeps the address.
type Client struct{}

// Run implements session.Session. It runs the client until ctx ends; when
// the session left the spec (session.ErrRemoved), it releases its lease
// first. It never releases on a restart or when braid stops: the lease
// and its address outlive the process.
func (*Client) Run(ctx context.Context, cfg Config, env *session.Env) error {
	l, err := openLink(ctx, cfg.Interface)
	if err != nil {
		return err
	}
	defer l.close()
	cid, err := cfg.clientID(l.ifi.HardwareAddr)
	if err != nil {
		return err
	}
	var seed [8]byte
	rand.Read(seed[:])
	r := &run{
		cfg: cfg, env: env, log: env.Log(), link: l,
		client:    rfc2131.New(rfc2131.Identity{HWAddr: l.ifi.HardwareAddr, ClientID: cid, VendorClass: cfg.VendorClass, Hostname: cfg.Hostname}, cfg.Timing, binary.LittleEndian.Uint64(seed[:])),
		replies:   make(chan received, 16),
		conflicts: make(chan netip.Addr, 1),
	}
	done := make(chan struct{})
	defer close(done)
	go l.read(r.replies, done)
	return r.loop(ctx)
}

// run is one run of the session.
type run struct {
	cfg       Config
	env       *session.Env
	log       *slog.Logger
	link      *link
	client    rfc2131.Client
	replies   chan received
	conflicts chan netip.Addr
	// checks ends the address check in progress, if any.
	checks context.CancelFunc
}

func (r *run) loop(ctx context.Context) error {
	defer func() {
		if r.checks != nil {
			r.checks()
		}
	}()
	held := r.persisted()
	if held != nil {
		r.log.Info("confirming the lease held before the restart", "address", held.Address, "server", held.Server)
	}
	r.step(rfc2131.Start{Lease: held})
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		timer.Stop()
		var tc <-chan time.Time
		if d := r.client.Deadline(); !d.IsZero() {
			timer.Reset(time.Until(d))
			tc = timer.C
		}
		select {
		case <-ctx.Done():
			if context.Cause(ctx) == session.ErrRemoved {
				r.step(rfc2131.Release{})
			}
			return nil
		case <-tc:
			r.step(rfc2131.Timeout{})
		case rx := <-r.replies:
			r.step(rfc2131.Receive{Msg: rx.msg})
		case a := <-r.conflicts:
			r.log.Warn("the offered address is in use by another host: declining it", "address", a)
			r.step(rfc2131.Conflict{Addr: a})
		}
	}
}

// persisted returns the lease in the session's own facts slot that has
// not expired: the one it held before a restart.
func (r *run) persisted() *rfc2131.Lease {
	for _, f := range r.env.Facts().Slots[r.env.ID()].Facts {
		l := f.Lease4
		if l == nil || l.Uplink != r.cfg.Uplink || !l.Server.IsValid() || (!f.Expires.IsZero() && !time.Now().Before(f.Expires)) {
			continue
		}
		return &rfc2131.Lease{Address: l.Address, Gateway: l.Gateway, DNS: slices.Clone(l.DNS), Server: l.Server,
			Obtained: l.Obtained, Renew: l.Renew, Rebind: l.Rebind, Expiry: f.Expires}
	}
	return nil
}

// step feeds ev to the client, carries out its actions, and reports its
// state.
func (r *run) step(ev rfc2131.Event) {
	now := time.Now()
	before := r.client.Phase()
	var acts []rfc2131.Action
	r.client, acts = r.client.Step(ev, now)
	for _, a := range acts {
		r.do(a)
	}
	if p := r.client.Phase(); p != before {
		r.log.Debug("DHCP client state", "from", before.String(), "to", p.String())
	}
	state := session.Waiting
	if p := r.client.Phase(); p.Holds() || p == rfc2131.Rebooting {
		state = session.Running
	}
	r.env.SetState(state, r.client.Describe(now))
}

// do carries out one action of the client.
func (r *run) do(a rfc2131.Action) {
	switch a := a.(type) {
	case rfc2131.Send:
		r.log.Debug("sending", "message", a.Msg.MessageType().String(), "from", a.From, "to", a.To, "xid", a.Msg.TransactionID.String())
		if err := r.link.send(a); err != nil {
			// Lost like a datagram: the client sends again when its
			// timer says so.
			r.log.Warn("DHCP message not sent", "err", err)
		}
	case rfc2131.Bind:
		l := a.Lease
		r.log.Info("lease", "address", l.Address, "gateway", l.Gateway, "server", l.Server, "renew", l.Renew, "expires", l.Expiry)
		f := facts.Fact{Lease4: &facts.Lease4{Uplink: r.cfg.Uplink, Address: l.Address, Gateway: l.Gateway,
			DNS: l.DNS, Server: l.Server, Obtained: l.Obtained, Renew: l.Renew, Rebind: l.Rebind}, Expires: l.Expiry}
		if err := r.env.Publish(f); err != nil {
			r.log.Error("publishing the lease", "err", err)
		}
	case rfc2131.Unbind:
		r.log.Warn("lease lost", "why", a.Why)
		if err := r.env.Publish(); err != nil {
			r.log.Error("withdrawing the lease", "err", err)
		}
	case rfc2131.Check:
		r.check(a.Addr, r.client.Deadline())
	}
}

// check looks for another user of addr until deadline, in the
// background; a conflict comes back to the loop.
func (r *run) check(addr netip.Addr, deadline time.Time) {
	if r.checks != nil {
		r.checks()
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	r.checks = cancel
	go func() {
		defer cancel()
		conflict, err := probeAddress(ctx, r.link.ifi, addr, deadline)
		switch {
		case err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded):
			r.log.Warn("checking the offered address", "address", addr, "err", err)
		case conflict:
			select {
			case r.conflicts <- addr:
			default:
			}
		}
	}()
}
