package upstream

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/miekg/dns"

	"github.com/braid-router/braid/internal/sockmark"
)

// exchangeUDP asks r the packed query msg (q decoded) over UDP, from a
// socket of its own (a fresh source port, marked with r.Mark) with a
// fresh identifier, and returns the response, truncated or not, until
// ctx ends. Datagrams that are not the response are ignored (RFC 5452);
// an ICMP port unreachable fails it at once.
func exchangeUDP(ctx context.Context, r Resolver, msg []byte, q *dns.Msg) (*dns.Msg, error) {
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
	buf := make([]byte, dns.MaxMsgSize)
	for {
		n, err := c.Read(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, err
		}
		resp, err := decode(buf[:n], id, q)
		if err == nil {
			return resp, nil
		}
		if err != errNotReply {
			return nil, fmt.Errorf("its answer: %w", err)
		}
	}
}
