package upstream

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/braid-router/braid/internal/dnsstream"
)

// DefaultIdle is how long a persistent connection to a resolver stays
// open without a query (RFC 7766 section 6.2.3: clients close idle
// connections, servers do too, sooner or later).
const DefaultIdle = 10 * time.Second

// maxPipelined bounds the queries outstanding at once on one connection.
const maxPipelined = 1024

var (
	// errClosed says a connection ended under a query: the server
	// closed it (idle), reset it, or the pool did.
	errClosed = errors.New("connection closed")
	errIdle   = errors.New("idle")
	errBusy   = errors.New("too many queries outstanding on the connection")
	// errSilent says a query went unanswered on a connection that
	// delivered nothing else meanwhile: it may be wedged (a peer gone
	// without a reset), and is given up.
	errSilent = errors.New("silent connection")
)

// stream is the persistent DNS-over-TCP connection to one resolver
// (RFC 7766): dialled at its first query, reused and pipelined (the
// answers, in any order, matched to their queries by identifier), closed
// when idle or when a query times out with no answer at all meanwhile,
// and dialled again at the next query once closed.
type stream struct {
	dial func(ctx context.Context) (net.Conn, error)
	idle time.Duration

	dialMu sync.Mutex // one dial at a time: the queries meanwhile share it
	mu     sync.Mutex
	cur    *streamConn
	closed bool
}

func newStream(idle time.Duration, dial func(ctx context.Context) (net.Conn, error)) *stream {
	return &stream{dial: dial, idle: idle}
}

// exchange sends the packed query msg on the connection (with an
// identifier of the connection's) and returns the raw answer and the
// identifier it was sent with. A query that finds a reused connection
// closed under it is asked once more on a fresh one (RFC 7766 section
// 6.2.1: the server may close an idle connection at any time).
func (s *stream) exchange(ctx context.Context, msg []byte) ([]byte, uint16, error) {
	for retry := true; ; retry = false {
		c, reused, err := s.conn(ctx)
		if err != nil {
			return nil, 0, err
		}
		b, id, err := c.exchange(ctx, msg)
		if err != nil && reused && retry && ctx.Err() == nil && errors.Is(err, errClosed) {
			continue
		}
		return b, id, err
	}
}

// conn is the open connection, or a new one; reused says it was open.
func (s *stream) conn(ctx context.Context) (c *streamConn, reused bool, err error) {
	if c := s.open(); c != nil {
		return c, true, nil
	}
	s.dialMu.Lock()
	defer s.dialMu.Unlock()
	if c := s.open(); c != nil {
		return c, true, nil // dialled while this one waited
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil, false, errClosed
	}
	nc, err := s.dial(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("connect: %w", err)
	}
	c = newStreamConn(nc, s.idle)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		c.fail(errClosed)
		return nil, false, errClosed
	}
	s.cur = c
	return c, false, nil
}

func (s *stream) open() *streamConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur != nil && s.cur.alive() {
		return s.cur
	}
	return nil
}

// close closes the connection; queries after it fail.
func (s *stream) close() {
	s.mu.Lock()
	c := s.cur
	s.closed, s.cur = true, nil
	s.mu.Unlock()
	if c != nil {
		c.fail(errClosed)
	}
}

// streamConn is one connection: a reader delivers each answer to the
// query waiting for its identifier.
type streamConn struct {
	c    net.Conn
	idle time.Duration
	wmu  sync.Mutex // one message written at a time

	mu      sync.Mutex
	pending map[uint16]chan []byte
	err     error     // why it ended; nil while open
	last    time.Time // when a query last ended
	heard   time.Time // when an answer last came
	timer   *time.Timer
}

func newStreamConn(nc net.Conn, idle time.Duration) *streamConn {
	c := &streamConn{c: nc, idle: idle, pending: map[uint16]chan []byte{}, last: time.Now()}
	c.mu.Lock()
	c.timer = time.AfterFunc(idle, c.idleCheck)
	c.mu.Unlock()
	go c.read()
	return c
}

func (c *streamConn) alive() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err == nil
}

func (c *streamConn) exchange(ctx context.Context, msg []byte) ([]byte, uint16, error) {
	ch := make(chan []byte, 1)
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return nil, 0, err
	}
	if len(c.pending) >= maxPipelined {
		c.mu.Unlock()
		return nil, 0, errBusy
	}
	id := newID()
	for c.pending[id] != nil {
		id = newID()
	}
	c.pending[id] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, id)
		c.last = time.Now()
		c.mu.Unlock()
	}()

	sent := time.Now()
	c.wmu.Lock()
	if dl, ok := ctx.Deadline(); ok {
		c.c.SetWriteDeadline(dl)
	}
	err := dnsstream.Write(c.c, withID(msg, id))
	c.wmu.Unlock()
	if err != nil {
		c.fail(err)
		return nil, 0, fmt.Errorf("%w: %w", errClosed, err)
	}
	select {
	case b, ok := <-ch:
		if !ok {
			c.mu.Lock()
			defer c.mu.Unlock()
			return nil, 0, c.err
		}
		return b, id, nil
	case <-ctx.Done():
		c.mu.Lock()
		silent := c.heard.Before(sent)
		c.mu.Unlock()
		if silent && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			c.fail(errSilent)
		}
		return nil, 0, ctx.Err()
	}
}

// read delivers answers until the connection ends.
func (c *streamConn) read() {
	for {
		b, err := dnsstream.Read(c.c)
		if err != nil {
			c.fail(err)
			return
		}
		id := binary.BigEndian.Uint16(b)
		c.mu.Lock()
		c.heard = time.Now()
		if ch := c.pending[id]; ch != nil {
			delete(c.pending, id) // a second answer finds no one
			ch <- b
		}
		c.mu.Unlock()
	}
}

// fail ends the connection with cause: the queries waiting on it fail.
func (c *streamConn) fail(cause error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return
	}
	if errors.Is(cause, errClosed) {
		c.err = cause
	} else {
		c.err = fmt.Errorf("%w: %w", errClosed, cause)
	}
	for id, ch := range c.pending {
		close(ch)
		delete(c.pending, id)
	}
	c.timer.Stop()
	c.c.Close()
}

// idleCheck closes the connection once it has had no query outstanding
// for idle.
func (c *streamConn) idleCheck() {
	c.mu.Lock()
	since := time.Since(c.last)
	busy := len(c.pending) > 0
	if c.err == nil && (busy || since < c.idle) {
		c.timer.Reset(max(c.idle-since, time.Second))
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	c.fail(errIdle)
}
