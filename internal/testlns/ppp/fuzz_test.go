package ppp

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/braid-router/braid/sessions/ppp/frame"
)

// FuzzInput brings the LNS's side up with braid's client (when the first
// octet is odd) or just opens it, then feeds it arbitrary frames, each
// preceded by its length octet, with timeouts between them: it never
// panics, and every frame it sends parses with the full header.
func FuzzInput(f *testing.F) {
	lcpReq := frame.Packet{Code: frame.ConfigureRequest, ID: 1, Data: frame.EncodeOptions([]frame.Option{frame.MRU(1500), frame.Magic(7)})}.Frame(nil, frame.ProtoLCP)
	f.Add(append([]byte{0, byte(len(lcpReq))}, lcpReq...))
	f.Add([]byte{1, 8, 0xc0, 0x21, 9, 1, 0, 8, 0, 0})
	f.Add([]byte{1, 10, 0xff, 0x03, 0x80, 0x57, 1, 1, 0, 6, 1, 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) == 0 {
			return
		}
		check := func(acts []Action) {
			for _, a := range acts {
				if s, ok := a.(Send); ok {
					if len(s.Frame) < 4 || s.Frame[0] != frame.Address || s.Frame[1] != frame.Control {
						t.Fatalf("sent % x", s.Frame)
					}
					if _, err := frame.Parse(s.Frame); err != nil {
						t.Fatalf("sent % x: %v", s.Frame, err)
					}
				}
			}
		}
		var c *Conn
		now := time.Unix(1e9, 0)
		if b[0]%2 == 1 {
			l := newLink(t, CHAP, "testpass")
			l.open()
			l.run(time.Second)
			c, now = l.lns, l.now
		} else {
			c = New(Config{User: "u", Password: []byte("p"), Rand: rand.NewChaCha8([32]byte{})})
			check(c.Open(now))
		}
		for b = b[1:]; len(b) > 0; {
			n := min(int(b[0]), len(b)-1)
			check(c.Input(b[1:1+n], now))
			b = b[1+n:]
			now = now.Add(700 * time.Millisecond)
			check(c.Timeout(now))
		}
	})
}
