package rfc1661

import (
	"bytes"
	"testing"
	"time"

	"github.com/braid-router/braid/sessions/ppp/frame"
)

// FuzzConn feeds a Conn, brought to a phase the first octet picks
// (establish, authenticate with CHAP or PAP, network with IPv6 up),
// arbitrary frames from the peer, with timeouts between them: it never
// panics, and every frame it sends is well formed, with the full header.
// The rest of the input is frames, each preceded by its length octet.
func FuzzConn(f *testing.F) {
	lcpReq := frame.Packet{Code: frame.ConfigureRequest, ID: 1, Data: frame.EncodeOptions([]frame.Option{frame.MRU(1500), frame.AuthCHAPMD5(), frame.Magic(7)})}.Frame(nil, frame.ProtoLCP)
	for _, seed := range [][]byte{
		append([]byte{0, byte(len(lcpReq))}, lcpReq...),
		{1, 12, 0xff, 0x03, 0xc2, 0x23, 1, 1, 0, 8, 3, 1, 2, 3},
		{2, 10, 0xff, 0x03, 0x80, 0x21, 1, 1, 0, 10, 3, 6},
		{2, 8, 0xc0, 0x21, 9, 1, 0, 8, 0, 0},
		{3, 9, 0xff, 0x03, 0xc0, 0x23, 2, 0, 0, 5, 0},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) == 0 {
			return
		}
		l := newLNS(t, Config{Keepalive: time.Second})
		switch b[0] % 4 {
		case 0:
			l.open()
		case 1:
			chap := frame.AuthCHAPMD5()
			l.lcpUp(&chap)
		case 2:
			l.lcpUp(nil)
			l.ipv6cpUp()
		case 3:
			pap := frame.AuthPAP()
			l.lcpUp(&pap)
		}
		b = b[1:]
		for len(b) > 0 {
			n := int(b[0])
			b = b[1:]
			if n > len(b) {
				n = len(b)
			}
			in := bytes.Clone(b[:n])
			b = b[n:]
			l.take(l.c.Input(in, l.now))
			l.advance(700 * time.Millisecond)
		}
		if len(l.sent) > 0 {
			// Frames braid sends are checked by take; none may be an
			// Echo-Reply or an Ack from a finished link.
			if l.c.Done() && l.fin == nil {
				t.Fatal("done without Finished")
			}
		}
	})
}
