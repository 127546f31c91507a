//go:build braidtest

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/braid-router/braid/facts"
	"github.com/braid-router/braid/internal/transparent"
	"github.com/braid-router/braid/session"
	"github.com/braid-router/braid/sessions/dhcp4"
	"github.com/braid-router/braid/sessions/health"
	"github.com/braid-router/braid/sessions/proxy"
)

func registerStandIns(reg *session.Registry, log *slog.Logger) {
	dir := os.Getenv(standInsEnv)
	if dir == "" {
		return
	}
	log.Warn("test build: stand-in sessions replace dhcp4, health and proxy", "dir", dir)
	session.Register(reg, dhcp4.Kind, func() session.Session[dhcp4.Config] { return &standIn[dhcp4.Config]{dir: dir} })
	session.Register(reg, health.Kind, func() session.Session[health.Config] { return &standIn[health.Config]{dir: dir} })
	session.Register(reg, proxy.Kind, func() session.Session[proxy.Config] { return standInProxy{} })
}

// standInProxy listens where the transparent proxy would, with
// IP_TRANSPARENT on its port in both families, and reports its peer
// healthy, so that the steering hands it LAN TCP; it answers each connection with one line naming
// itself and the destination the client asked for (the accepted socket's
// local address), then closes it.
type standInProxy struct{}

func (standInProxy) Run(ctx context.Context, cfg proxy.Config, env *session.Env) error {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for _, network := range []string{"tcp4", "tcp6"} {
		ln, err := transparent.Listen(ctx, network, cfg.Port)
		if err != nil {
			return err
		}
		lns = append(lns, ln)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, ln := range lns {
		wg.Go(func() { answerStandIn(ln, env.ID()) })
	}
	if err := env.Publish(facts.Fact{Peer: &facts.Peer{Address: cfg.Peer, Healthy: true, Reason: "stand-in"}, Process: true}); err != nil {
		return err
	}
	env.SetState(session.Running, fmt.Sprintf("stand-in listening on port %d", cfg.Port))
	<-ctx.Done()
	for _, ln := range lns {
		ln.Close()
	}
	return nil
}

// answerStandIn answers every connection of ln until it is closed.
func answerStandIn(ln net.Listener, id string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond) // say, EMFILE: do not spin
			continue
		}
		dst := c.LocalAddr().(*net.TCPAddr).AddrPort()
		dst = netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
		c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "%s%s %s\n", standInProxyBanner, id, dst)
		c.Close()
	}
}

// standIn is one stand-in session. The supervisor keeps one value per
// session across its restarts, so Starts counts them.
type standIn[C session.Config] struct {
	dir string

	mu    sync.Mutex
	state standInState
	id    string
	cfg   C
}

func (s *standIn[C]) Run(ctx context.Context, cfg C, env *session.Env) error {
	s.mu.Lock()
	s.id, s.cfg = env.ID(), cfg
	s.state.Starts++
	s.mu.Unlock()
	if err := s.report(); err != nil {
		return err
	}
	orders := filepath.Join(s.dir, fileID(env.ID())+".json")
	env.SetState(session.Waiting, "orders in "+orders)
	var last []byte
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		b, err := os.ReadFile(orders)
		if err == nil && string(b) != string(last) {
			last = b
			var o standInOrders
			if err := json.Unmarshal(b, &o); err != nil {
				return fmt.Errorf("stand-in orders %s: %w", orders, err)
			}
			switch {
			case o.Panic != "":
				panic("stand-in: " + o.Panic)
			case o.Crash != "":
				return errors.New("stand-in: " + o.Crash)
			}
			if err := s.publish(env, cfg, o); err != nil {
				return err
			}
			env.SetState(session.Running, "stand-in following "+orders)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

func (s *standIn[C]) publish(env *session.Env, cfg C, o standInOrders) error {
	var fs []facts.Fact
	switch c := any(cfg).(type) {
	case dhcp4.Config:
		if l := o.Lease; l != nil {
			f := facts.Fact{Lease4: &facts.Lease4{Uplink: c.Uplink, Address: l.Address, Gateway: l.Gateway}}
			if l.Lifetime != "" {
				d, err := time.ParseDuration(l.Lifetime)
				if err != nil {
					return err
				}
				f.Expires = time.Now().Add(d)
			}
			fs = append(fs, f)
		}
	case health.Config:
		if o.Healthy != nil {
			fs = append(fs, facts.Fact{Health: &facts.Health{Uplink: c.Uplink, Healthy: *o.Healthy}, Process: true})
		}
	}
	return env.Publish(fs...)
}

// Update takes a new configuration in place.
func (s *standIn[C]) Update(cfg C) error {
	s.mu.Lock()
	s.cfg = cfg
	s.state.Updates++
	s.mu.Unlock()
	return s.report()
}

func (s *standIn[C]) report() error {
	s.mu.Lock()
	st := s.state
	st.Config = map[string]string{}
	for _, f := range s.cfg.Fields() {
		st.Config[f.Name] = f.Display()
	}
	id := s.id
	s.mu.Unlock()
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(s.dir, fileID(id)+".state.json"), b, 0o600)
}
