package peer

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/Jigsaw-Code/outline-sdk/transport/shadowsocks"

	"github.com/braid-router/braid/session"
	"github.com/braid-router/braid/sessions/peer/socksaddr"
)

// Defaults of a Server's limits.
const (
	// DefaultIdleTimeout ends a relayed connection after this long
	// without a byte in either direction, and a rejected one after this
	// long without a byte from its client.
	DefaultIdleTimeout = 5 * time.Minute
	// DefaultDialTimeout bounds a dial to a destination.
	DefaultDialTimeout = 30 * time.Second
	// DefaultRejectedPerSource is how many rejected connections of one
	// source (an IPv4 address, an IPv6 /64) are read and discarded at
	// once; more are closed at once.
	DefaultRejectedPerSource = 8
	// DefaultRejectedTotal is how many rejected connections of all
	// sources together are read and discarded at once.
	DefaultRejectedTotal = 1024
	// DefaultReplaySalts is how many salts each of the replay filter's
	// two generations holds: the last this many are always remembered.
	DefaultReplaySalts = 20000
)

// Reasons a connection is rejected, as Server.OnReject is told.
const (
	// RejectAuth: its first chunk did not authenticate (a wrong key,
	// garbage).
	RejectAuth = "auth"
	// RejectTruncated: it ended, or fell idle, before its first chunk
	// and target address were complete.
	RejectTruncated = "truncated"
	// RejectReplay: its salt was seen before.
	RejectReplay = "replay"
	// RejectAddress: it authenticated, but its target address does not
	// decode.
	RejectAddress = "address"
	// RejectLocal: its destination is local and not in allowLocal.
	RejectLocal = "local"
	// RejectCapped: a rejected connection over its source's cap (or the
	// cap of all sources), closed at once (it is also counted under its
	// first reason).
	RejectCapped = "capped"
)

// Server is the peer's session: session.Session[Config].
type Server struct {
	// IdleTimeout, DialTimeout, RejectedPerSource, RejectedTotal and
	// ReplaySalts override the defaults when set.
	IdleTimeout       time.Duration
	DialTimeout       time.Duration
	RejectedPerSource int
	RejectedTotal     int
	ReplaySalts       int
	// OnReject, when set, is told of every rejected connection with its
	// reason (the metrics' counter); it is called on the connection's
	// goroutine.
	OnReject func(reason string)
	// UDPIdleTimeout and UDPAssociations override the UDP relay's
	// defaults when set.
	UDPIdleTimeout  time.Duration
	UDPAssociations int
	// OnRejectDatagram, when set, is told of every datagram the UDP relay
	// rejects, with its reason (RejectAuth, RejectTruncated,
	// RejectReplay, RejectAddress, RejectLocal, or RejectCapped for one
	// that would open an association past the cap); it is called on the
	// relay's goroutines.
	OnRejectDatagram func(reason string)
	// Getenv and ReadFile resolve the key; nil: the process's.
	Getenv   func(string) string
	ReadFile func(string) ([]byte, error)

	gauges gauges
}

// gauges are what a running server holds now.
type gauges struct {
	relayed, rejected, associations atomic.Int64
}

// Stats are what a Server holds at a moment: what its memory and
// goroutines grow with, each bounded by a cap but Relayed (one per
// connection of a client that holds the key).
type Stats struct {
	// Relayed is the connections being relayed to a destination.
	Relayed int
	// Rejected is the rejected connections held, read and discarded: at
	// most RejectedTotal.
	Rejected int
	// Associations is the UDP relay's associations: at most
	// UDPAssociations.
	Associations int
}

// Stats returns what s holds now.
func (s *Server) Stats() Stats {
	return Stats{
		Relayed:      int(s.gauges.relayed.Load()),
		Rejected:     int(s.gauges.rejected.Load()),
		Associations: int(s.gauges.associations.Load()),
	}
}

// conns is what a running server shares between its connections.
type conns struct {
	log     *slog.Logger
	key     *shadowsocks.EncryptionKey
	idle    time.Duration
	replay  *replayFilter
	limit   *sourceLimit
	dialer  *dialer
	reject  func(string)
	gauges  *gauges
	wg      sync.WaitGroup
	mu      sync.Mutex
	open    map[net.Conn]struct{}
	stopped bool
}

// Run implements session.Session: it listens on cfg.Listen with
// Multipath TCP and with UDP (the relay), and serves both until ctx ends,
// then closes every connection and association.
func (s *Server) Run(ctx context.Context, cfg Config, env *session.Env) error {
	getenv, readFile := s.Getenv, s.ReadFile
	if getenv == nil {
		getenv = os.Getenv
	}
	if readFile == nil {
		readFile = os.ReadFile
	}
	if cfg.Key == nil {
		return errors.New("peer: no key")
	}
	password, err := cfg.Key.Resolve(getenv, readFile)
	if err != nil {
		return fmt.Errorf("peer key: %w", err)
	}
	key, err := shadowsocks.NewEncryptionKey(cfg.Cipher, password)
	if err != nil {
		return fmt.Errorf("peer cipher %q: %w", cfg.Cipher, err)
	}
	var lc net.ListenConfig
	lc.SetMultipathTCP(true)
	ln, err := lc.Listen(ctx, "tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("peer: listen on %s: %w", cfg.Listen, err)
	}
	pc, err := lc.ListenPacket(ctx, "udp", cfg.Listen)
	if err != nil {
		ln.Close()
		return fmt.Errorf("peer: listen on %s (udp): %w", cfg.Listen, err)
	}
	env.Log().Info("peer listening", "listen", ln.Addr().String(), "cipher", cfg.Cipher)
	env.SetState(session.Running, "listening on "+ln.Addr().String()+" (tcp, udp)")
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	udp := make(chan error, 1)
	go func() {
		err := s.ServeUDP(ctx, pc.(*net.UDPConn), key, cfg.AllowLocal, env.Log())
		cancel()
		udp <- err
	}()
	err = s.Serve(ctx, ln, key, cfg.AllowLocal, env.Log())
	cancel()
	return errors.Join(err, <-udp)
}

// Serve serves the shadowsocks streams that ln accepts, decrypted with
// key, until ctx ends; then it closes ln and every connection, and
// returns nil once their goroutines are done. It returns an error when
// accepting fails for another reason.
func (s *Server) Serve(ctx context.Context, ln net.Listener, key *shadowsocks.EncryptionKey, allowLocal []string, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d, err := newDialer(allowLocal, or(s.DialTimeout, DefaultDialTimeout))
	if err != nil {
		ln.Close()
		return err
	}
	c := &conns{
		log:    log,
		key:    key,
		idle:   or(s.IdleTimeout, DefaultIdleTimeout),
		replay: newReplayFilter(or(s.ReplaySalts, DefaultReplaySalts)),
		limit:  newSourceLimit(or(s.RejectedPerSource, DefaultRejectedPerSource), or(s.RejectedTotal, DefaultRejectedTotal)),
		dialer: d,
		reject: s.OnReject,
		gauges: &s.gauges,
		open:   map[net.Conn]struct{}{},
	}
	if c.reject == nil {
		c.reject = func(string) {}
	}
	stop := context.AfterFunc(ctx, func() {
		ln.Close()
		c.mu.Lock()
		c.stopped = true
		for conn := range c.open {
			conn.Close()
		}
		c.mu.Unlock()
	})
	defer stop()
	defer c.wg.Wait()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				// Out of descriptors: wait for connections to end rather
				// than spin.
				log.Warn("peer: accept", "err", err)
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(100 * time.Millisecond):
				}
				continue
			}
			ln.Close()
			return fmt.Errorf("peer: accept: %w", err)
		}
		if !c.track(conn) {
			conn.Close()
			return nil
		}
		c.wg.Go(func() {
			defer c.untrack(conn)
			c.handle(ctx, conn.(*net.TCPConn))
		})
	}
}

func or[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

func (c *conns) track(conn net.Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return false
	}
	c.open[conn] = struct{}{}
	return true
}

func (c *conns) untrack(conn net.Conn) {
	conn.Close()
	c.mu.Lock()
	delete(c.open, conn)
	c.mu.Unlock()
}

// saltRecorder makes the peer's own salts and records them in the replay
// filter, so that a stream the peer sent, sent back to it, is a replay.
type saltRecorder struct{ f *replayFilter }

func (r saltRecorder) GetSalt(salt []byte) error {
	for {
		if _, err := rand.Read(salt); err != nil {
			return err
		}
		if r.f.add(salt) {
			return nil
		}
	}
}

// handle serves one accepted connection.
func (c *conns) handle(ctx context.Context, client *net.TCPConn) {
	var src netip.Addr
	if a, ok := client.RemoteAddr().(*net.TCPAddr); ok {
		src = a.AddrPort().Addr().Unmap()
	}
	act := &activity{}
	in := &idleReader{c: client, idle: c.idle, act: act}

	// The salt, read here to be checked against the replay filter once
	// the first chunk authenticates; then the stream as the client sent
	// it.
	salt := make([]byte, c.key.SaltSize())
	if _, err := io.ReadFull(in, salt); err != nil {
		c.rejected(client, in, src, RejectTruncated, err)
		return
	}
	r := shadowsocks.NewReader(io.MultiReader(bytes.NewReader(salt), in), c.key)
	// The first octet of the target address makes the reader read and
	// open the first chunk.
	var first [1]byte
	if _, err := io.ReadFull(r, first[:]); err != nil {
		reason := RejectAuth
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || isTimeout(err) {
			reason = RejectTruncated
		}
		c.rejected(client, in, src, reason, err)
		return
	}
	if !c.replay.add(salt) {
		c.rejected(client, in, src, RejectReplay, nil)
		return
	}
	dst, err := socksaddr.Read(io.MultiReader(bytes.NewReader(first[:]), r))
	if err != nil {
		reason := RejectAddress
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || isTimeout(err) {
			reason = RejectTruncated
		}
		c.rejected(client, in, src, reason, err)
		return
	}
	target, err := c.dialer.dial(ctx, dst)
	if err != nil {
		var refused *refusedError
		if errors.As(err, &refused) {
			c.log.Info("peer: refused a local destination", "client", src.String(), "destination", dst.String(), "err", refused)
			c.reject(RejectLocal)
		} else {
			c.log.Debug("peer: dial failed", "client", src.String(), "destination", dst.String(), "err", err)
		}
		// An authenticated client learns that its destination failed
		// from the stream ending without a byte.
		return
	}
	c.track(target)
	defer c.untrack(target)
	c.gauges.relayed.Add(1)
	defer c.gauges.relayed.Add(-1)
	c.relay(client, target, r, act)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// rejected handles a connection that gets nothing: it is counted, and,
// within its source's cap, read and discarded until the client closes it
// or it falls idle. Never a byte is written to it.
//
// The connection takes its place under the cap before it is reported, so
// that whoever counts the reports (the metric, a test) finds it held.
func (c *conns) rejected(client *net.TCPConn, in io.Reader, src netip.Addr, reason string, err error) {
	held := c.limit.acquire(src)
	if held {
		c.gauges.rejected.Add(1)
	}
	c.reject(reason)
	c.log.Debug("peer: rejected a connection", "client", src.String(), "reason", reason, "err", err)
	if !held {
		c.reject(RejectCapped)
		return
	}
	defer c.limit.release(src)
	defer c.gauges.rejected.Add(-1)
	io.Copy(io.Discard, in)
}
