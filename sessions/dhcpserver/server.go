package dhcpserver

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"

	"github.com/braid-router/braid/internal/atomicfile"
	"github.com/braid-router/braid/session"
	"github.com/braid-router/braid/sessions/dhcpserver/leases"
)

// LeaseFile is the file in braid's state directory that keeps the LAN's
// leases across restarts.
const LeaseFile = "dhcpserver-leases.json"

// retry is how often the server tries again to open its socket while the
// LAN's link is missing, and how often, while it serves, it checks the
// link and takes ended leases out of its status.
const retry = time.Second

// Server is the LAN's DHCP server session. It implements
// session.Session; a new configuration restarts it, and it reads its
// leases back from its state file.
type Server struct {
	// StateDir is braid's state directory, where LeaseFile lives; empty
	// keeps the leases in memory only.
	StateDir string
}

// packet is one message read from the socket.
type packet struct {
	msg *dhcpv4.DHCPv4
	err error
}

// Run implements session.Session: it serves the LAN until ctx ends,
// waiting while the LAN's link is missing, and again after it went.
func (s *Server) Run(ctx context.Context, cfg Config, env *session.Env) error {
	if err := cfg.Check(); err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	saved, err := s.load()
	if err != nil {
		// A file braid cannot read is kept aside and the server starts
		// afresh: the clients ask again, most for their old address.
		env.Log().Warn("LAN DHCP leases unreadable; starting without them", "err", err)
	}
	table, err := leases.New(cfg.leases(), saved)
	if err != nil {
		return fmt.Errorf("leases: %w", err)
	}
	for ctx.Err() == nil {
		conn, index, ok := s.open(ctx, cfg, env)
		if !ok {
			return nil
		}
		err := s.serve(ctx, cfg, env, table, conn, index)
		conn.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// open opens the server's socket on the LAN's link, waiting while the
// link is missing, and returns it with the link's index; false when ctx
// ended first.
func (s *Server) open(ctx context.Context, cfg Config, env *session.Env) (*net.UDPConn, int, bool) {
	for {
		ifi, err := net.InterfaceByName(cfg.Interface)
		if err == nil {
			var conn *net.UDPConn
			if conn, err = server4.NewIPv4UDPConn(cfg.Interface, &net.UDPAddr{Port: serverPort}); err == nil {
				return conn, ifi.Index, true
			}
		}
		env.Log().Debug("LAN DHCP server socket", "err", err)
		env.SetState(session.Waiting, "link "+cfg.Interface)
		select {
		case <-ctx.Done():
			return nil, 0, false
		case <-time.After(retry):
		}
	}
}

// serve answers the LAN on conn until ctx ends (nil) or the link it is
// bound to, index, is gone (nil: open waits for it again).
func (s *Server) serve(ctx context.Context, cfg Config, env *session.Env, table *leases.Table, conn *net.UDPConn, index int) error {
	log := env.Log()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	log.Info("LAN DHCP server listening", "interface", cfg.Interface, "range", cfg.First.String()+"-"+cfg.Last.String())

	packets := make(chan packet)
	done := make(chan struct{})
	defer close(done)
	go func() {
		buf := make([]byte, 1500)
		for {
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				select {
				case packets <- packet{err: err}:
				case <-done:
				}
				return
			}
			m, err := dhcpv4.FromBytes(buf[:n])
			if err != nil {
				log.Debug("LAN DHCP: undecodable message", "err", err)
				continue
			}
			select {
			case packets <- packet{msg: m}:
			case <-done:
				return
			}
		}
	}()

	status := func() { env.SetState(session.Running, Detail(table.Bound(time.Now()))) }
	status()
	tick := time.NewTicker(retry)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			// A link that went (or came back as another one) takes the
			// socket's binding with it.
			if ifi, err := net.InterfaceByName(cfg.Interface); err != nil || ifi.Index != index {
				log.Info("LAN DHCP server: link gone", "interface", cfg.Interface)
				return nil
			}
			status()
		case p := <-packets:
			if p.err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("read: %w", p.err)
			}
			ans := handle(cfg, table, p.msg, time.Now())
			log.Debug("LAN DHCP", "what", ans.note)
			if ans.changed {
				if err := s.save(table.Leases()); err != nil {
					log.Warn("LAN DHCP leases not saved", "err", err)
				}
				status()
			}
			if ans.reply == nil {
				continue
			}
			if _, err := conn.WriteTo(ans.reply.ToBytes(), net.UDPAddrFromAddrPort(ans.to)); err != nil {
				log.Warn("LAN DHCP reply not sent", "to", ans.to, "err", err)
			}
		}
	}
}

// load reads the saved leases; none when there is no state directory or
// no file yet. An unreadable file is renamed with ".bad" and reported.
func (s *Server) load() ([]leases.Lease, error) {
	if s.StateDir == "" {
		return nil, nil
	}
	path := filepath.Join(s.StateDir, LeaseFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	ls, err := leases.Unmarshal(b)
	if err != nil {
		os.Rename(path, path+".bad")
		return nil, fmt.Errorf("%s (kept as %s.bad): %w", path, path, err)
	}
	return ls, nil
}

// save writes the leases to the state file, atomically.
func (s *Server) save(ls []leases.Lease) error {
	if s.StateDir == "" {
		return nil
	}
	b, err := leases.Marshal(ls)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(s.StateDir, 0o700); err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(s.StateDir, LeaseFile), b, 0o600)
}

// maxShown is how many leases the status line names.
const maxShown = 8

// Detail is the session's status detail: how many leases are bound, and
// each (address, MAC, hostname, until when), "2 leases: 192.168.1.10
// 02:00:00:00:00:05 (nas) static until 2026-12-06T14:05:00Z, ...".
func Detail(bound []leases.Lease) string {
	switch len(bound) {
	case 0:
		return "no leases"
	}
	var parts []string
	for i, l := range bound {
		if i == maxShown {
			parts = append(parts, fmt.Sprintf("and %d more", len(bound)-maxShown))
			break
		}
		p := l.Addr.String() + " " + l.MAC
		if l.Hostname != "" {
			p += " (" + l.Hostname + ")"
		}
		if l.Static {
			p += " static"
		}
		p += " until " + l.Expires.UTC().Format(time.RFC3339)
		parts = append(parts, p)
	}
	n := "lease"
	if len(bound) > 1 {
		n = "leases"
	}
	return fmt.Sprintf("%d %s: %s", len(bound), n, strings.Join(parts, ", "))
}
