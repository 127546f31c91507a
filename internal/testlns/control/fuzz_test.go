package control

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/braid-router/braid/sessions/l2tp/avp"
)

// FuzzReceive brings a tunnel and session up with braid's LAC (when the
// first octet is odd) or starts from nothing, then feeds the LNS's side
// arbitrary datagrams, each preceded by its length octet, that parse as
// control messages, with timeouts between them: it never panics, and
// every message it sends can be written and parses again.
func FuzzReceive(f *testing.F) {
	sccrq, _ := avp.NewMessage(avp.SCCRQ, 0, 0, avp.Uint16(avp.ProtocolVersion, 0x0100), avp.Uint16(avp.AssignedTunnelID, 9),
		avp.New(avp.Challenge, []byte("0123456789abcdef"))).Append(nil)
	f.Add(append([]byte{0, byte(len(sccrq))}, sccrq...))
	hello, _ := avp.NewMessage(avp.HELLO, 1, 0).Append(nil)
	f.Add(append([]byte{1, byte(len(hello))}, hello...))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) == 0 {
			return
		}
		c := New(Config{Hostname: "lns", Secret: []byte("6pe"), Rand: rand.NewChaCha8([32]byte{})})
		now := time.Unix(1e9, 0)
		if b[0]%2 == 1 {
			p := newPair(t, "6pe", "6pe")
			p.start()
			c, now = p.lns, p.now
		}
		check := func(acts []Action) {
			for _, a := range acts {
				if s, ok := a.(Send); ok {
					w, err := s.Msg.Append(nil)
					if err != nil {
						t.Fatalf("%s: %v", s.Msg, err)
					}
					if _, err := avp.ParseMessage(w); err != nil {
						t.Fatalf("%s does not parse: %v", s.Msg, err)
					}
				}
			}
		}
		for b = b[1:]; len(b) > 0; {
			n := min(int(b[0]), len(b)-1)
			if m, err := avp.ParseMessage(b[1 : 1+n]); err == nil {
				check(c.Receive(m, now))
			}
			b = b[1+n:]
			now = now.Add(700 * time.Millisecond)
			check(c.Timeout(now))
		}
	})
}
