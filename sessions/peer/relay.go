package peer

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Jigsaw-Code/outline-sdk/transport/shadowsocks"

	"github.com/braid-router/braid/internal/tcpqueue"
)

// activity is when either direction of a relayed connection last read a
// byte, in Unix nanoseconds.
type activity struct{ last atomic.Int64 }

// idleReader reads from a connection until it has been idle, both of its
// directions together, for idle: a long download keeps its quiet upload
// alive.
type idleReader struct {
	c    net.Conn
	idle time.Duration
	act  *activity
	// deadline is the read deadline set last; it moves only when it is
	// an eighth of idle behind, sparing a timer reset per read.
	deadline time.Time
}

func (r *idleReader) Read(p []byte) (int, error) {
	for {
		now := time.Now()
		if want := now.Add(r.idle); want.Sub(r.deadline) > r.idle/8 {
			r.deadline = want
			r.c.SetReadDeadline(want)
		}
		n, err := r.c.Read(p)
		if n > 0 {
			r.act.last.Store(time.Now().UnixNano())
		}
		if err != nil && isTimeout(err) && n == 0 {
			// Idle here; the other direction may not be.
			if last := time.Unix(0, r.act.last.Load()); time.Since(last) < r.idle {
				r.deadline = last.Add(r.idle)
				r.c.SetReadDeadline(r.deadline)
				continue
			}
		}
		return n, err
	}
}

// relay copies both ways between the client's stream (decrypted by r,
// encrypted towards the client) and the target, until both directions
// end: each end of stream is passed on as a half-close, an error or the
// idle timeout ends both with a reset. Its buffers are the shadowsocks
// reader's and writer's, one chunk (16 KiB) each; in the kernel, each
// socket holds at most tcpqueue.Unsent bytes written but not yet sent
// (plus one chunk), and its receive queue its autotuned window.
func (c *conns) relay(client, target *net.TCPConn, r shadowsocks.Reader, act *activity) {
	// Best effort: a kernel without it queues more, nothing breaks.
	tcpqueue.LimitUnsent(client, tcpqueue.Unsent)
	tcpqueue.LimitUnsent(target, tcpqueue.Unsent)
	out := &idleReader{c: target, idle: c.idle, act: act}
	w := shadowsocks.NewWriter(client, c.key)
	w.SetSaltGenerator(saltRecorder{c.replay})
	var once sync.Once
	// abort resets both: the box's connection (MP_FASTCLOSE for a
	// Multipath TCP one) and the destination's, which then stops
	// sending; a close would leave either to take data nobody reads.
	abort := func() {
		once.Do(func() {
			reset(client)
			reset(target)
		})
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		// Upload: r.WriteTo writes each decrypted chunk as it is.
		if _, err := r.WriteTo(target); err != nil {
			abort()
			return
		}
		target.CloseWrite()
	})
	// Download: w.ReadFrom encrypts what it reads in place.
	if _, err := w.ReadFrom(out); err != nil {
		abort()
	} else {
		client.CloseWrite()
	}
	wg.Wait()
}

// reset closes c with a reset (SO_LINGER 0): a TCP RST, or MP_FASTCLOSE
// on a Multipath TCP connection.
func reset(c *net.TCPConn) {
	c.SetLinger(0)
	c.Close()
}
