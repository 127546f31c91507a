package peer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/Jigsaw-Code/outline-sdk/transport/shadowsocks"

	"github.com/braid-router/braid/sessions/peer/socksaddr"
)

// Defaults of the UDP relay's limits.
const (
	// DefaultUDPIdleTimeout ends an association after this long without
	// a datagram either way (RFC 4787's least for a NAT's UDP mapping).
	DefaultUDPIdleTimeout = 2 * time.Minute
	// DefaultUDPAssociations is how many associations (a client address
	// and port, each with a socket of its own towards the destinations)
	// the relay holds at once; a datagram that would open one more is
	// dropped.
	DefaultUDPAssociations = 1024
)

const (
	// maxDatagram is the buffer a client's datagram is read into: the
	// largest UDP payload.
	maxDatagram = 64 << 10
	// replyBuffer is an association's buffer for a reply: room for the
	// salt, the source address, the payload and the tag. A longer reply
	// (more than any path's MTU carries unfragmented) is dropped, which
	// bounds an association's memory.
	replyBuffer = 16 << 10
	// maxResolving is how many names the relay resolves at once; a
	// datagram to a name past it is dropped.
	maxResolving = 32
	// resolveTimeout bounds the resolution of a datagram's name.
	resolveTimeout = 5 * time.Second
	// maxChecked is how many destinations an association remembers the
	// guard let through, sparing a route lookup per datagram.
	maxChecked = 256
)

// errCapped says an association would be one too many.
var errCapped = errors.New("too many UDP associations")

// udpRelay is the shadowsocks UDP relay: each datagram a client sends
// is sealed on its own (a salt of its own), carries its target address
// and payload; the relay sends the payload from the client's association
// socket and seals each reply, with the address it came from, back to
// the client.
type udpRelay struct {
	log       *slog.Logger
	key       *shadowsocks.EncryptionKey
	pc        *net.UDPConn
	dialer    *dialer
	replay    *replayFilter
	reject    func(string)
	idle      time.Duration
	max       int
	gauges    *gauges
	resolving chan struct{}
	wg        sync.WaitGroup

	mu      sync.Mutex
	assoc   map[netip.AddrPort]*association
	stopped bool
}

// association is a client's address and port, and its socket towards the
// destinations. Replies come from any address (the relay is a full cone),
// but only ever go back to the client.
type association struct {
	client netip.AddrPort
	conn   *net.UDPConn
	// last is when a datagram last went either way, in Unix
	// nanoseconds; the client's direction stores it under udpRelay.mu,
	// where the association's expiry reads it.
	last atomic.Int64
	// checked are destinations the guard let through (under
	// udpRelay.mu).
	checked map[netip.AddrPort]bool
}

// ServeUDP serves the shadowsocks UDP relay on pc, datagrams sealed with
// key, until ctx ends; then it closes pc and every association, and
// returns nil once their goroutines are done. It returns an error when
// reading pc fails for another reason. A datagram that does not
// authenticate, is too short, reuses a salt, has no whole target address
// or asks for a destination the peer refuses gets nothing and is counted
// (OnRejectDatagram).
func (s *Server) ServeUDP(ctx context.Context, pc *net.UDPConn, key *shadowsocks.EncryptionKey, allowLocal []string, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d, err := newDialer(allowLocal, or(s.DialTimeout, DefaultDialTimeout))
	if err != nil {
		pc.Close()
		return err
	}
	u := &udpRelay{
		log:       log,
		key:       key,
		pc:        pc,
		dialer:    d,
		replay:    newReplayFilter(or(s.ReplaySalts, DefaultReplaySalts)),
		reject:    s.OnRejectDatagram,
		idle:      or(s.UDPIdleTimeout, DefaultUDPIdleTimeout),
		max:       or(s.UDPAssociations, DefaultUDPAssociations),
		gauges:    &s.gauges,
		resolving: make(chan struct{}, maxResolving),
		assoc:     map[netip.AddrPort]*association{},
	}
	if u.reject == nil {
		u.reject = func(string) {}
	}
	stop := context.AfterFunc(ctx, u.stop)
	defer stop()
	defer u.wg.Wait()
	buf := make([]byte, maxDatagram)
	for {
		n, client, err := pc.ReadFromUDPAddrPort(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if isTimeout(err) {
				continue
			}
			u.stop()
			return fmt.Errorf("peer: udp: %w", err)
		}
		client = netip.AddrPortFrom(client.Addr().Unmap(), client.Port())
		salt, dst, payload, reason := openDatagram(key, buf[:n])
		if reason == "" && !u.replay.add(salt) {
			reason = RejectReplay
		}
		if reason != "" {
			u.rejected(client, reason, nil)
			continue
		}
		if dst.IP.IsValid() {
			u.send(client, netip.AddrPortFrom(dst.IP, dst.Port), payload)
			continue
		}
		u.resolve(ctx, client, dst, payload)
	}
}

// stop closes the relay's socket and every association.
func (u *udpRelay) stop() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.stopped {
		return
	}
	u.stopped = true
	u.pc.Close()
	for _, a := range u.assoc {
		a.conn.Close()
	}
}

func (u *udpRelay) rejected(client netip.AddrPort, reason string, err error) {
	u.reject(reason)
	u.log.Debug("peer: rejected a datagram", "client", client.String(), "reason", reason, "err", err)
}

// send sends payload to dst from client's association, opening it if
// need be, unless the guard refuses dst.
func (u *udpRelay) send(client, dst netip.AddrPort, payload []byte) {
	dst = netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
	u.mu.Lock()
	a := u.assoc[client]
	known := a != nil && a.checked[dst]
	u.mu.Unlock()
	if !known {
		if err := u.dialer.check(dst); err != nil {
			u.log.Info("peer: refused a local destination", "client", client.String(), "destination", dst.String(), "err", err)
			u.reject(RejectLocal)
			return
		}
	}
	a, err := u.associate(client, dst)
	if err != nil {
		if errors.Is(err, errCapped) {
			u.rejected(client, RejectCapped, err)
		} else {
			u.log.Debug("peer: udp association", "client", client.String(), "err", err)
		}
		return
	}
	if _, err := a.conn.WriteToUDPAddrPort(payload, dst); err != nil {
		u.log.Debug("peer: udp send", "client", client.String(), "destination", dst.String(), "err", err)
	}
}

// resolve sends payload to the address dst's name resolves to, on a
// goroutine of its own (at most maxResolving at once; past that the
// datagram is dropped).
func (u *udpRelay) resolve(ctx context.Context, client netip.AddrPort, dst socksaddr.Addr, payload []byte) {
	select {
	case u.resolving <- struct{}{}:
	default:
		u.log.Debug("peer: udp: too many names being resolved, dropped a datagram", "client", client.String(), "destination", dst.String())
		return
	}
	payload = bytes.Clone(payload)
	u.wg.Go(func() {
		defer func() { <-u.resolving }()
		ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
		defer cancel()
		ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", dst.Domain)
		if err != nil || len(ips) == 0 {
			u.log.Debug("peer: udp: resolve", "client", client.String(), "destination", dst.String(), "err", err)
			return
		}
		u.send(client, netip.AddrPortFrom(ips[0], dst.Port), payload)
	})
}

// associate returns client's association, opening it (and its reply
// goroutine) if it has none, and records that dst passed the guard and
// that a datagram goes out now.
func (u *udpRelay) associate(client, dst netip.AddrPort) (*association, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.stopped {
		return nil, net.ErrClosed
	}
	a := u.assoc[client]
	if a == nil {
		if len(u.assoc) >= u.max {
			return nil, errCapped
		}
		// A dual-stack socket (IPv4 destinations as IPv4-mapped
		// addresses) when the namespace has IPv6, else IPv4 only.
		conn, err := net.ListenUDP("udp", nil)
		if err != nil {
			return nil, err
		}
		a = &association{client: client, conn: conn, checked: map[netip.AddrPort]bool{}}
		u.assoc[client] = a
		u.gauges.associations.Add(1)
		u.wg.Go(func() { u.replies(a) })
	}
	if !a.checked[dst] {
		if len(a.checked) >= maxChecked {
			clear(a.checked)
		}
		a.checked[dst] = true
	}
	a.last.Store(time.Now().UnixNano())
	return a, nil
}

// replies seals what a's socket receives back to its client, until the
// association has been idle both ways for the idle timeout or the relay
// stops; then it closes it.
func (u *udpRelay) replies(a *association) {
	defer func() {
		u.mu.Lock()
		if u.assoc[a.client] == a {
			delete(u.assoc, a.client)
		}
		u.mu.Unlock()
		a.conn.Close()
		u.gauges.associations.Add(-1)
	}()
	buf := make([]byte, replyBuffer)
	head := replyHead(u.key)
	room := buf[head : len(buf)-u.key.TagSize()]
	salts := saltRecorder{u.replay}
	var deadline time.Time
	for {
		// The deadline moves only when it is an eighth of the idle
		// timeout behind, sparing a timer reset per datagram.
		if want := time.Now().Add(u.idle); want.Sub(deadline) > u.idle/8 {
			deadline = want
			a.conn.SetReadDeadline(deadline)
		}
		n, _, flags, from, err := a.conn.ReadMsgUDPAddrPort(room, nil)
		if err != nil {
			if isTimeout(err) {
				if last, idle := u.expired(a); !idle {
					deadline = last.Add(u.idle)
					a.conn.SetReadDeadline(deadline)
					continue
				}
			}
			return
		}
		a.last.Store(time.Now().UnixNano())
		if flags&syscall.MSG_TRUNC != 0 {
			u.log.Debug("peer: udp: dropped a reply longer than the buffer", "client", a.client.String(), "from", from.String())
			continue
		}
		sealed, err := sealDatagram(buf, n, from, u.key, salts)
		if err != nil {
			u.log.Debug("peer: udp: seal", "err", err)
			continue
		}
		if _, err := u.pc.WriteToUDPAddrPort(sealed, a.client); err != nil {
			u.log.Debug("peer: udp: reply", "client", a.client.String(), "err", err)
		}
	}
}

// expired reports whether a has been idle both ways for the idle timeout,
// and if so forgets it, under the lock the client's direction touches it
// under: a datagram that found it before is sent, one after opens another.
func (u *udpRelay) expired(a *association) (last time.Time, idle bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	last = time.Unix(0, a.last.Load())
	if time.Since(last) < u.idle {
		return last, false
	}
	if u.assoc[a.client] == a {
		delete(u.assoc, a.client)
	}
	return last, true
}
