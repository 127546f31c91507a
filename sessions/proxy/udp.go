package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/Jigsaw-Code/outline-sdk/transport/shadowsocks"
	"github.com/braid-router/braid/internal/transparent"
	"golang.org/x/sys/unix"
)

// Defaults of the UDP relay.
const (
	// DefaultUDPIdle is how long an association (a LAN source's datagrams
	// and their replies) may carry nothing either way before it ends.
	DefaultUDPIdle = 60 * time.Second
	// DefaultUDPAssociations bounds the associations at once; past it, the
	// one idle longest ends for the new one.
	DefaultUDPAssociations = 1024
	// maxUDPDestinations bounds the destinations an association
	// remembers (replies are taken from those only); past it, the one
	// sent to least recently is forgotten.
	maxUDPDestinations = 256
	// maxUDPSenders bounds the sockets replies are sent from, one per
	// address they come from; past it, the one used least recently is
	// closed.
	maxUDPSenders = 1024
	// peerResolveTimeout bounds the look-up of a peer given by name;
	// peerResolveEvery is how long its answer serves new associations.
	peerResolveTimeout = 5 * time.Second
	peerResolveEvery   = 5 * time.Minute
	// replyBuf is the size of an association's buffer for the peer's
	// datagrams: a reply that does not fit (a payload past 16 KiB less
	// the salt, address and tag, beyond any path's MTU, so fragmented)
	// is dropped. It bounds an association's memory.
	replyBuf = 16 << 10
)

// udpRelay carries LAN UDP to the peer and back, in shadowsocks UDP
// datagrams. The steering hands it LAN datagrams on a transparent socket
// per family, each with the destination its client sent it to.
//
// An association is per LAN source (address and port), not per source
// and destination: shadowsocks carries the target in every datagram, and
// the peer keeps one socket of its own per association, so a LAN client
// keeps one public address and port at the peer whatever it talks to
// (endpoint-independent mapping, RFC 4787 REQ-1), which STUN, games and
// WebRTC rely on; and a LAN client talking to many destinations costs one
// socket to the peer, not one per destination. Replies are taken only
// from destinations the client sent to (address and port), as the
// kernel's NAT does: the peer's socket is not a hole into the LAN.
//
// Each association's socket to the peer is plain UDP bound to no
// address: every datagram is routed by the main table when it is sent,
// so it leaves by the first healthy uplink by priority, and by the next
// one when that fails. A reply goes to its LAN client from the address
// it came from (a transparent socket bound to that address).
type udpRelay struct {
	port  int
	idle  time.Duration
	limit int
	log   *slog.Logger
	lans  []*net.UDPConn
	wg    sync.WaitGroup

	mu      sync.Mutex
	params  *udpParams
	assocs  map[netip.AddrPort]*association
	senders map[netip.AddrPort]*sender
	closed  bool
}

// udpParams is where associations send and with which key.
type udpParams struct {
	peer string // HOST:PORT
	key  *shadowsocks.EncryptionKey

	mu       sync.Mutex
	addr     netip.AddrPort // the peer's, once resolved
	resolved time.Time      // when addr was looked up, for a name
}

// resolve returns the peer's address. A name is looked up (the first
// address the resolver gives, IPv4 or IPv6) when a new association
// needs it and the last answer is older than peerResolveEvery; a failed
// look-up keeps the last answer, if any.
func (p *udpParams) resolve() (netip.AddrPort, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.addr.IsValid() && (p.resolved.IsZero() || time.Since(p.resolved) < peerResolveEvery) {
		return p.addr, nil
	}
	host, port, err := net.SplitHostPort(p.peer)
	if err != nil {
		return netip.AddrPort{}, err
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("peer %s: port: %w", p.peer, err)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		p.addr = netip.AddrPortFrom(ip.Unmap(), uint16(n))
		return p.addr, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), peerResolveTimeout)
	defer cancel()
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err == nil && len(ips) == 0 {
		err = errors.New("no address")
	}
	if err != nil {
		if p.addr.IsValid() {
			return p.addr, nil
		}
		return netip.AddrPort{}, fmt.Errorf("peer %s: %w", p.peer, err)
	}
	p.addr, p.resolved = netip.AddrPortFrom(ips[0].Unmap(), uint16(n)), time.Now()
	return p.addr, nil
}

// listenUDP opens the relay's transparent sockets on port (IPv4 and
// IPv6) and starts reading them; Close stops it.
func listenUDP(ctx context.Context, port int, idle time.Duration, limit int, params *udpParams, log *slog.Logger) (*udpRelay, error) {
	r := &udpRelay{port: port, idle: idle, limit: limit, log: log, params: params,
		assocs: map[netip.AddrPort]*association{}, senders: map[netip.AddrPort]*sender{}}
	for _, unspec := range []netip.Addr{netip.IPv4Unspecified(), netip.IPv6Unspecified()} {
		c, err := transparent.ListenUDP(ctx, netip.AddrPortFrom(unspec, uint16(port)), true)
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("proxy: %w", err)
		}
		r.lans = append(r.lans, c)
	}
	for _, c := range r.lans {
		r.wg.Go(func() { r.readLAN(c) })
	}
	return r, nil
}

// setParams makes new associations use p; those open end, so that none
// goes on with another peer or key.
func (r *udpRelay) setParams(p *udpParams) {
	r.mu.Lock()
	r.params = p
	assocs := r.assocs
	r.assocs = map[netip.AddrPort]*association{}
	r.mu.Unlock()
	for _, a := range assocs {
		a.close()
	}
}

// Close closes the LAN sockets, every association and every sender,
// and returns once their goroutines are gone.
func (r *udpRelay) Close() {
	r.mu.Lock()
	r.closed = true
	assocs, senders := r.assocs, r.senders
	r.assocs, r.senders = map[netip.AddrPort]*association{}, map[netip.AddrPort]*sender{}
	r.mu.Unlock()
	for _, c := range r.lans {
		c.Close()
	}
	for _, a := range assocs {
		a.close()
	}
	for _, s := range senders {
		s.conn.Close()
	}
	r.wg.Wait()
}

// readLAN relays the datagrams the steering hands c until c is closed.
// One buffer, sealed in place: the payload is never copied (the cipher
// itself is set up per datagram, each having its own salt).
func (r *udpRelay) readLAN(c *net.UDPConn) {
	buf := newDatagramBuf()
	oob := make([]byte, transparent.OOBSize)
	for {
		n, oobn, flags, src, err := c.ReadMsgUDPAddrPort(buf[udpHead:len(buf)-udpTail], oob)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			r.log.Debug("proxy: udp: read from the LAN", "err", err)
			continue
		}
		if flags&unix.MSG_TRUNC != 0 {
			continue
		}
		dst, err := transparent.OrigDst(oob[:oobn])
		if err != nil {
			r.log.Debug("proxy: udp: a LAN datagram", "src", src, "err", err)
			continue
		}
		if int(dst.Port()) == r.port && isLocal(dst.Addr()) {
			// Sent to the socket itself, not steered: nowhere to relay.
			continue
		}
		a, err := r.association(netip.AddrPortFrom(src.Addr().Unmap(), src.Port()))
		if err != nil {
			r.log.Debug("proxy: udp: no association", "src", src, "err", err)
			continue
		}
		a.send(buf, n, dst)
	}
}

// association returns src's association, opening it (and ending the
// one idle longest, when at the limit) if it has none.
func (r *udpRelay) association(src netip.AddrPort) (*association, error) {
	r.mu.Lock()
	if a := r.assocs[src]; a != nil {
		r.mu.Unlock()
		return a, nil
	}
	params, closed := r.params, r.closed
	r.mu.Unlock()
	if closed {
		return nil, net.ErrClosed
	}
	peer, err := params.resolve()
	if err != nil {
		return nil, err
	}
	network := "udp4"
	if peer.Addr().Is6() {
		network = "udp6"
	}
	conn, err := net.ListenUDP(network, nil)
	if err != nil {
		return nil, fmt.Errorf("socket to the peer: %w", err)
	}
	a := &association{r: r, client: src, conn: conn, peer: peer, key: params.key, dests: map[netip.AddrPort]int64{}}
	a.act.touch()

	r.mu.Lock()
	if r.closed || r.params != params {
		r.mu.Unlock()
		conn.Close()
		return nil, errors.New("the relay closed or changed its peer")
	}
	var evict *association
	if len(r.assocs) >= r.limit {
		for _, o := range r.assocs {
			if evict == nil || o.act.last.Load() < evict.act.last.Load() {
				evict = o
			}
		}
		delete(r.assocs, evict.client)
	}
	r.assocs[src] = a
	a.watchdog = a.act.watch(r.idle, a.expire)
	r.wg.Go(a.readPeer)
	r.mu.Unlock()
	if evict != nil {
		evict.close()
	}
	return a, nil
}

// reply sends payload to the LAN client to, from src (where the reply
// came from, which the client sent to).
func (r *udpRelay) reply(src, to netip.AddrPort, payload []byte) {
	for range 2 {
		s, err := r.sender(src)
		if err != nil {
			r.log.Debug("proxy: udp: a socket to answer from", "src", src, "err", err)
			return
		}
		_, err = s.conn.WriteToUDPAddrPort(payload, to)
		if !errors.Is(err, net.ErrClosed) {
			if err != nil {
				r.log.Debug("proxy: udp: reply to the LAN", "src", src, "dst", to, "err", err)
			}
			return
		}
		// Closed for another meanwhile: open it again.
	}
}

// sender is a transparent socket bound to an address replies come from.
type sender struct {
	conn *net.UDPConn
	used int64 // UnixNano, under the relay's mu
}

// sender returns the socket that sends from src, opening it (and closing
// the one used least recently, at the bound) if there is none.
func (r *udpRelay) sender(src netip.AddrPort) (*sender, error) {
	now := time.Now().UnixNano()
	r.mu.Lock()
	if s := r.senders[src]; s != nil {
		s.used = now
		r.mu.Unlock()
		return s, nil
	}
	r.mu.Unlock()
	c, err := transparent.ListenUDP(context.Background(), src, false)
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	s := &sender{conn: c, used: now}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		c.Close()
		return nil, net.ErrClosed
	}
	if o := r.senders[src]; o != nil {
		// Another association opened it meanwhile.
		c.Close()
		return o, nil
	}
	if len(r.senders) >= maxUDPSenders {
		var lru netip.AddrPort
		var oldest int64
		for a, o := range r.senders {
			if !lru.IsValid() || o.used < oldest {
				lru, oldest = a, o.used
			}
		}
		r.senders[lru].conn.Close()
		delete(r.senders, lru)
	}
	r.senders[src] = s
	return s, nil
}

// association is one LAN source's datagrams and their replies, over its
// own socket to the peer.
type association struct {
	r        *udpRelay
	client   netip.AddrPort
	conn     *net.UDPConn
	peer     netip.AddrPort
	key      *shadowsocks.EncryptionKey
	act      activity
	watchdog *time.Timer
	once     sync.Once

	mu    sync.Mutex
	dests map[netip.AddrPort]int64 // sent to, when (UnixNano)
}

// send seals the n octets of LAN payload at buf[udpHead:] for dst and
// sends them to the peer.
func (a *association) send(buf []byte, n int, dst netip.AddrPort) {
	now := time.Now().UnixNano()
	a.act.last.Store(now)
	a.mu.Lock()
	if _, ok := a.dests[dst]; !ok && len(a.dests) >= maxUDPDestinations {
		var lru netip.AddrPort
		var oldest int64
		for d, t := range a.dests {
			if !lru.IsValid() || t < oldest {
				lru, oldest = d, t
			}
		}
		delete(a.dests, lru)
	}
	a.dests[dst] = now
	a.mu.Unlock()
	pkt, err := seal(buf, n, dst, a.key)
	if err != nil {
		a.r.log.Debug("proxy: udp: seal", "dst", dst, "err", err)
		return
	}
	if _, err := a.conn.WriteToUDPAddrPort(pkt, a.peer); err != nil {
		a.r.log.Debug("proxy: udp: send to the peer", "peer", a.peer, "err", err)
	}
}

// asked reports whether the client sent to src.
func (a *association) asked(src netip.AddrPort) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, ok := a.dests[src]
	return ok
}

// readPeer passes the peer's replies to the client until the association
// ends. Datagrams from anyone but the peer, that do not authenticate, or
// from where the client did not send, are dropped.
func (a *association) readPeer() {
	buf := make([]byte, replyBuf)
	for {
		n, _, flags, from, err := a.conn.ReadMsgUDPAddrPort(buf, nil)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				a.r.log.Debug("proxy: udp: read from the peer", "err", err)
				a.expire()
			}
			return
		}
		if netip.AddrPortFrom(from.Addr().Unmap(), from.Port()) != a.peer || flags&unix.MSG_TRUNC != 0 {
			continue
		}
		src, payload, err := openReply(buf[:n], a.key)
		if err != nil {
			a.r.log.Debug("proxy: udp: a datagram from the peer", "err", err)
			continue
		}
		if !a.asked(src) {
			continue
		}
		a.act.touch()
		a.r.reply(src, a.client, payload)
	}
}

// expire ends the association once it has been idle; the relay forgets
// it.
func (a *association) expire() {
	a.r.mu.Lock()
	if a.r.assocs[a.client] == a {
		delete(a.r.assocs, a.client)
	}
	a.r.mu.Unlock()
	a.close()
}

// close ends the association: its socket to the peer closes, and its
// reader returns.
func (a *association) close() {
	a.once.Do(func() {
		if a.watchdog != nil {
			a.watchdog.Stop()
		}
		a.conn.Close()
	})
}
