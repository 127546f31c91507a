package proxy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Jigsaw-Code/outline-sdk/transport/shadowsocks"

	"github.com/braid-router/braid/internal/tcpqueue"
	"github.com/braid-router/braid/sessions/peer/socksaddr"
)

// clientDataWait is how long the target address waits for the LAN
// client's first bytes, to leave in one segment with them (no
// distinctive header-only packet); a client that waits for the server
// to speak first gets the address alone after it.
const clientDataWait = 10 * time.Millisecond

// replyWait is how long a connection waits for the peer's first
// authenticated byte before it counts as a miss of the peer's health;
// while the health is strict (the peer has not answered since its last
// miss), the connection is then given up and its client reset:
// shadowsocks-libev and braid's peer, given another key, answer nothing
// and keep the connection open (so that a prober learns nothing).
const replyWait = 5 * time.Second

// relayer carries LAN connections to the peer.
type relayer struct {
	peer      string
	cipher    string
	key       *shadowsocks.EncryptionKey
	idle      time.Duration
	replyWait time.Duration
	dialer    net.Dialer
	log       *slog.Logger
	secret    string
	// health is told how each connection went: whether the peer sent an
	// authenticated byte within replyWait. While it is strict, a
	// connection without one is reset; otherwise it waits as long as its
	// client does (a long poll), up to the idle timeout.
	health *peerHealth
}

// serve relays lan, whose client asked for dst, through the peer, and
// closes it. When the peer cannot be reached, or its stream ends before
// one authenticated byte (the peer could not reach dst, or does not hold
// the key), or breaks, the LAN connection is reset: the client sees a
// refused or broken connection at once, never a hang.
func (r *relayer) serve(ctx context.Context, lan *net.TCPConn, dst netip.AddrPort) {
	peer, err := r.dial(ctx)
	if err != nil {
		r.log.Debug("proxy: peer unreachable", "dst", dst, "err", err)
		reset(lan)
		return
	}
	wait := time.Duration(0)
	if r.health.strict() {
		wait = r.replyWait
	}
	var replied atomic.Bool
	start := time.Now()
	missed := time.AfterFunc(r.replyWait, func() {
		if !replied.Load() {
			r.health.connection(false)
		}
	})
	// Until it is answered, a peer found down gives it up.
	waited := r.health.wait(func() {
		reset(lan)
		reset(peer)
	})
	defer waited()
	// The peer dials dst in its family: for IPv6, whether it answered is
	// also evidence of whether it relays IPv6 at all.
	v6 := dst.Addr().Unmap().Is6()
	answered := func() {
		replied.Store(true)
		waited()
		r.health.connection(true)
		r.health.observe(peer)
		if v6 {
			r.health.connection6(true)
		}
	}
	err = relay(lan, peer, r.key, dst, r.idle, wait, answered)
	if err != nil {
		r.log.Debug("proxy: relay", "dst", dst, "err", err)
	}
	// Ended without a byte before the timer said so: a reply that does
	// not decrypt is a miss, and so is a relay that waited replyWait
	// itself (its own timer may fire first); the peer closing early (it
	// could not reach dst) or the client giving up says nothing of the
	// peer.
	if missed.Stop() && !replied.Load() && (protocolError(err) || time.Since(start) >= r.replyWait) {
		r.health.connection(false)
	}
	// For IPv6 it is not nothing: the peer closing without a byte (or
	// leaving it unanswered) is an IPv6 failure, which Misses in a row
	// make LAN IPv6 go direct (a peer without IPv6 fails every one).
	if v6 && !replied.Load() && errors.Is(err, errNoReply) {
		r.health.connection6(false)
	}
}

// udpParams is where the UDP relay's new associations send, and with
// which key.
func (r *relayer) udpParams() *udpParams { return &udpParams{peer: r.peer, key: r.key} }

func (r *relayer) dial(ctx context.Context) (*net.TCPConn, error) {
	c, err := r.dialer.DialContext(ctx, "tcp", r.peer)
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

// Errors of a relay.
var (
	errIdle    = errors.New("idle timeout")
	errNoReply = errors.New("no answer from the peer")
)

// relay carries lan to dst through peer, a connection to the
// shadowsocks server, until both directions end; it closes both. Each
// direction's end of stream is passed on as a half-close (FIN) and the
// other direction goes on. relay's own memory per connection is the
// shadowsocks reader's and writer's one chunk each (16 KiB): it reads
// from one side only as fast as the other takes it. The kernel's
// queues are bounded on the sending side only: both sockets hold at
// most tcpqueue.Unsent bytes written but not yet sent (plus one chunk),
// while each receive queue keeps its autotuned window (see README.md,
// "what the kernel holds"). A connection silent both ways for
// idle is reset; with replyWait > 0, so is one whose peer has sent no
// authenticated byte that long after it was opened. The peer's first
// authenticated byte calls answered.
func relay(lan, peer *net.TCPConn, key *shadowsocks.EncryptionKey, dst netip.AddrPort, idle, replyWait time.Duration, answered func()) error {
	a := &activity{}
	a.touch()
	// Best effort: a kernel without it queues more, nothing breaks.
	tcpqueue.LimitUnsent(lan, tcpqueue.Unsent)
	tcpqueue.LimitUnsent(peer, tcpqueue.Unsent)
	var once sync.Once
	var cause error
	// abort ends both sides at once with a reset: the LAN's, so that
	// its client sees the failure; the peer's, so that it stops reading
	// from the destination (closed, the box's Multipath TCP socket would
	// linger without an owner, taking what the peer still sends, for
	// net.mptcp.close_timeout). Blocked reads and writes return.
	abort := func(err error) {
		once.Do(func() {
			cause = err
			reset(lan)
			reset(peer)
		})
	}
	watchdog := a.watch(idle, func() { abort(errIdle) })
	defer watchdog.Stop()
	out := &replyWriter{w: lan, answered: answered}
	if replyWait > 0 {
		t := time.AfterFunc(replyWait, func() {
			if !out.replied.Load() {
				abort(errNoReply)
			}
		})
		defer t.Stop()
	}

	w := shadowsocks.NewWriter(peer, key)
	var hdr [1 + 16 + 2]byte
	if _, err := w.LazyWrite(targetAddr(hdr[:0], dst)); err != nil {
		abort(err)
		return err
	}
	flush := time.AfterFunc(clientDataWait, func() {
		if err := w.Flush(); err != nil {
			abort(err)
		}
	})
	defer flush.Stop()

	var wg sync.WaitGroup
	wg.Go(func() {
		// LAN to peer: the writer reads straight into its chunk buffer.
		if _, err := w.ReadFrom(activeReader{lan, a}); err != nil {
			abort(err)
			return
		}
		if err := w.Flush(); err != nil {
			abort(err)
			return
		}
		peer.CloseWrite()
	})
	// Peer to LAN: the reader writes each decrypted chunk straight out.
	n, err := shadowsocks.NewReader(activeReader{peer, a}, key).WriteTo(out)
	switch {
	case err != nil:
		abort(err)
	case n == 0:
		abort(errNoReply)
	default:
		lan.CloseWrite()
	}
	wg.Wait()
	// Past this Do, no timer's abort can still set cause: reading it is
	// safe, and a late abort resets nothing.
	once.Do(func() {})
	lan.Close()
	peer.Close()
	return cause
}

// targetAddr appends dst to b as a shadowsocks target address (the SOCKS5
// address of RFC 1928 section 5), an IPv4 destination never as 4in6.
func targetAddr(b []byte, dst netip.AddrPort) []byte {
	return socksaddr.Append(b, socksaddr.Addr{IP: dst.Addr().Unmap(), Port: dst.Port()})
}

// reset closes c with a TCP reset (SO_LINGER 0); for a Multipath TCP
// connection, the kernel sends MP_FASTCLOSE instead, even with nothing
// unread (a plain close there is a DATA_FIN, and the closed socket goes
// on taking data until net.mptcp.close_timeout).
func reset(c *net.TCPConn) {
	c.SetLinger(0)
	c.Close()
}

// activity is when a connection last carried a byte, in either
// direction.
type activity struct {
	last atomic.Int64 // UnixNano
}

func (a *activity) touch() { a.last.Store(time.Now().UnixNano()) }

// watch calls expired once idle has passed since the last touch. One
// timer per connection, no goroutine and no deadline churn on the sockets:
// the timer sleeps until the earliest moment the connection could be
// idle, looks, and sleeps again.
func (a *activity) watch(idle time.Duration, expired func()) *time.Timer {
	var mu sync.Mutex
	var t *time.Timer
	mu.Lock()
	defer mu.Unlock()
	t = time.AfterFunc(idle, func() {
		left := time.Until(time.Unix(0, a.last.Load()).Add(idle))
		if left <= 0 {
			expired()
			return
		}
		mu.Lock()
		t.Reset(left)
		mu.Unlock()
	})
	return t
}

// activeReader touches a on every read that returns bytes.
type activeReader struct {
	r io.Reader
	a *activity
}

func (r activeReader) Read(b []byte) (int, error) {
	n, err := r.r.Read(b)
	if n > 0 {
		r.a.touch()
	}
	return n, err
}

// replyWriter is the LAN side of the peer-to-LAN direction: it notes the
// first authenticated byte it is given.
type replyWriter struct {
	w        io.Writer
	answered func()
	replied  atomic.Bool
}

func (w *replyWriter) Write(b []byte) (int, error) {
	if len(b) > 0 && !w.replied.Load() {
		w.replied.Store(true)
		if w.answered != nil {
			w.answered()
		}
	}
	return w.w.Write(b)
}
