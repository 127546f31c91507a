package control

import (
	"encoding/hex"
	"testing"
	"time"

	"github.com/braid-router/braid/sessions/l2tp/avp"
)

// FuzzReceive feeds arbitrary datagrams, read as control messages, to a
// connection in each phase: it never panics, every message it sends
// encodes, and a Closed connection has no deadline left.
func FuzzReceive(f *testing.F) {
	for _, s := range []string{
		// SCCRP with a hidden AVP, a StopCCN, a CDN, a HELLO, a ZLB.
		"c80200341122000000000001000880000000000200088000000000090000" + "0016000000240000000000000000000000000000",
		"c802002011220000000200040008800000000004000a8000000000010001",
		"c802001e112233440002000400088000000000000e000a800000000001000300000000",
		"c802001411220000000200040008800000000006",
		"c802000c1122000000020004",
	} {
		b, _ := hex.DecodeString(s)
		for phase := range 5 {
			f.Add(uint8(phase), b)
		}
	}
	f.Fuzz(func(t *testing.T, phase uint8, b []byte) {
		m, err := avp.ParseMessage(b)
		if err != nil {
			return
		}
		s := newScript(t, Config{Secret: secret})
		s.start()
		steps := []func(){
			func() {},
			func() {
				s.recv(avp.SCCRP, 0, 1, 0, sccrp(respond(avp.SCCRP, ourChallenge), avp.New(avp.Challenge, lnsChallenge))...)
			},
			func() { s.recv(avp.ICRP, 1, 3, ourSession, avp.Uint16(avp.AssignedSessionID, lnsSession)) },
			func() { s.recv(avp.ZLB, 2, 4, ourSession) },
			func() { s.c.Stop(avp.Result{Code: avp.StopClear}, s.now) },
		}
		for i := 0; i <= int(phase)%len(steps); i++ {
			steps[i]()
		}
		m.TunnelID = ourTunnel
		check := func(acts []Action) {
			for _, a := range acts {
				if snd, ok := a.(Send); ok {
					if _, err := snd.Msg.Append(nil); err != nil {
						t.Fatalf("sends a message that does not encode: %v", err)
					}
				}
			}
			if s.c.Phase() == Done && !s.c.Deadline().IsZero() {
				t.Fatal("closed with a deadline")
			}
		}
		check(s.c.Receive(m, s.now))
		for range 8 {
			if d := s.c.Deadline(); !d.IsZero() {
				s.now = d
				check(s.c.Timeout(s.now))
			}
		}
		s.now = s.now.Add(time.Hour)
		check(s.c.Timeout(s.now))
	})
}
