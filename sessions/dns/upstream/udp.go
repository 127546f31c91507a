package upstream

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/braid-router/braid/internal/sockmark"
)

// newBuffers is a pool of the datagram buffers of the UDP tries: the
// largest a datagram can be, since a resolver may send more than the
// query's EDNS0 size.
func newBuffers() *sync.Pool {
	return &sync.Pool{New: func() any { b := make([]byte, dns.MaxMsgSize); return &b }}
}

// exchangeUDP asks r the packed query msg (q decoded) over UDP, from a
// socket of its own (a fresh source port, marked with r.Mark) with a
// fresh identifier, reading into a buffer of buffers, and returns the
// response, truncated or not, until ctx ends. Datagrams that are not the
// response are ignored (RFC 5452); an ICMP port unreachable fails it at
// once.
func exchangeUDP(ctx context.Context, buffers *sync.Pool, r Resolver, msg []byte, q *dns.Msg) (*dns.Msg, error) {
	d := net.Dialer{Control: sockmark.Control(r.Mark)}
	c, err := d.DialContext(ctx, "udp", r.Addr.String())
	if err != nil {
		return nil, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	id := newID()
	if _, err := c.Write(withID(msg, id)); err != nil {
		return nil, err
	}
	bp := buffers.Get().(*[]byte)
	defer buffers.Put(bp)
	buf := *bp
	for {
		n, err := c.Read(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, err
		}
		// The decoded message may keep slices of what it was decoded
		// from: a copy of its own, the buffer going back to the pool.
		resp, err := decode(append([]byte(nil), buf[:n]...), id, q)
		if err == nil {
			return resp, nil
		}
		if err != errNotReply {
			return nil, fmt.Errorf("its answer: %w", err)
		}
	}
}
