package upstream

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/braid-router/braid/internal/dnsstream"
)

// TestStreamOutOfOrder: answers on a pipelined connection may come in
// any order (RFC 7766 section 7): each goes to the query with its
// identifier. The server here, a crafted one on loopback, reads two
// queries and answers the second first; then it closes the connection,
// and the next query dials again.
func TestStreamOutOfOrder(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// The server's goroutines end with their connections.
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var qs [][]byte
				for len(qs) < 2 {
					b, err := dnsstream.Read(c)
					if err != nil {
						return
					}
					qs = append(qs, b)
				}
				for _, b := range [][]byte{qs[1], qs[0]} {
					q := new(dns.Msg)
					if err := q.Unpack(b); err != nil {
						return
					}
					r := new(dns.Msg).SetReply(q)
					r.Answer = append(r.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET}, Txt: []string{q.Question[0].Name}})
					out, _ := r.Pack()
					if dnsstream.Write(c, out) != nil {
						return
					}
				}
			}()
		}
	}()
	dials := 0
	s := newStream(time.Minute, func(ctx context.Context) (net.Conn, error) {
		dials++
		var d net.Dialer
		return d.DialContext(ctx, "tcp", ln.Addr().String())
	})
	defer s.close()
	round := func() {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), within)
		defer cancel()
		var wg sync.WaitGroup
		for _, name := range []string{"one.test.", "two.test."} {
			wg.Go(func() {
				q := new(dns.Msg).SetQuestion(name, dns.TypeTXT)
				msg, _ := q.Pack()
				b, id, err := s.exchange(ctx, msg)
				if err != nil {
					t.Errorf("%s: %v", name, err)
					return
				}
				r, err := decode(b, id, q)
				if err != nil || binary.BigEndian.Uint16(b) != id {
					t.Errorf("%s: %v", name, err)
					return
				}
				if txt := r.Answer[0].(*dns.TXT).Txt[0]; txt != name {
					t.Errorf("%s answered with %s's answer", name, txt)
				}
			})
		}
		wg.Wait()
	}
	round()
	// The server closed the connection after its two answers.
	for s.open() != nil {
		time.Sleep(10 * time.Millisecond)
	}
	round()
	if dials != 2 {
		t.Errorf("%d connections for two rounds, the first closed by the server; want 2", dials)
	}
	s.close()
	q := new(dns.Msg).SetQuestion("three.test.", dns.TypeTXT)
	msg, _ := q.Pack()
	if _, _, err := s.exchange(context.Background(), msg); !errors.Is(err, errClosed) {
		t.Errorf("a query after close: %v, want errClosed", err)
	}
}

// TestStreamSilentConnection: a query that times out on a connection
// that answered nothing meanwhile (a server gone without a reset) gives
// the connection up: the next query dials a new one, which answers.
func TestStreamSilentConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for n := 0; ; n++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				for {
					b, err := dnsstream.Read(c)
					if err != nil {
						return
					}
					if n == 0 {
						continue // the first connection never answers
					}
					q := new(dns.Msg)
					if q.Unpack(b) != nil {
						return
					}
					out, _ := new(dns.Msg).SetReply(q).Pack()
					if dnsstream.Write(c, out) != nil {
						return
					}
				}
			}()
		}
	}()
	dials := 0
	s := newStream(time.Minute, func(ctx context.Context) (net.Conn, error) {
		dials++
		var d net.Dialer
		return d.DialContext(ctx, "tcp", ln.Addr().String())
	})
	defer s.close()
	msg, _ := new(dns.Msg).SetQuestion("silent.test.", dns.TypeA).Pack()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, _, err := s.exchange(ctx, msg); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a query to the silent connection: %v, want its deadline", err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), within)
	defer cancel()
	if _, _, err := s.exchange(ctx, msg); err != nil {
		t.Fatalf("the next query: %v", err)
	}
	if dials != 2 {
		t.Errorf("%d connections, want a second after the silent one", dials)
	}
}
