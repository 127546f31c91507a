package frame

import (
	"bytes"
	"testing"
)

// FuzzParse feeds arbitrary L2TP payloads to Parse: what it reads, written
// again with Append, reads back the same.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"ff 03 c0 21 01 01 00 04", "57 60 00", "ff 03 57", "c0 21", "ff 03", "", "80"} {
		f.Add(unhex(f, s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := Parse(b)
		if err != nil {
			return
		}
		again, err := Parse(Append(nil, fr.Protocol, fr.Info))
		if err != nil || again.Protocol != fr.Protocol || !bytes.Equal(again.Info, fr.Info) {
			t.Fatalf("% x read as %+v, written and read again as %+v, %v", b, fr, again, err)
		}
	})
}

// FuzzPacket feeds arbitrary Information fields to ParsePacket and
// ParseOptions: a packet written again is the packet without its
// padding, and options written again are the same octets.
func FuzzPacket(f *testing.F) {
	for _, s := range []string{
		"01 01 00 13 01 04 05 dc 03 05 c2 23 05 05 06 12 34 56 78",
		"01 01 00 0e 01 0a 02 24 d4 ff fe aa bb cc",
		"09 01 00 08 00 00 00 01 00 00",
		"01 01 00 06 01 01",
		"01 01 00 03",
	} {
		f.Add(unhex(f, s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePacket(b)
		if err != nil {
			return
		}
		if w := p.Append(nil); !bytes.Equal(w, b[:p.Len()]) {
			t.Fatalf("% x written again as % x", b[:p.Len()], w)
		}
		opts, err := ParseOptions(p.Data)
		if err != nil {
			return
		}
		if w := EncodeOptions(opts); !bytes.Equal(w, p.Data) {
			t.Fatalf("options % x written again as % x", p.Data, w)
		}
		for _, o := range opts {
			// The readers never panic, whatever the option holds.
			o.Uint16()
			o.Uint32()
			o.AuthProtocol()
			o.InterfaceID()
			o.IPv4()
		}
		EchoMagic(p.Data)
		RejectedProtocol(p.Data)
	})
}

// FuzzCHAP feeds arbitrary Information fields to ParseCHAP: a packet
// written again reads back the same.
func FuzzCHAP(f *testing.F) {
	for _, s := range []string{"01 2a 00 0c 04 00 01 02 03 6c 6e 73", "03 2a 00 06 4f 4b", "04 01 00 04", "02 01 00 05 00"} {
		f.Add(unhex(f, s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCHAP(b)
		if err != nil {
			return
		}
		back, err := ParseCHAP(c.Append(nil))
		if err != nil || !sameCHAP(back, c) {
			t.Fatalf("% x read as %+v, read again as %+v, %v", b, c, back, err)
		}
	})
}

// FuzzPAP feeds arbitrary Information fields to ParsePAP: a packet
// written again reads back the same.
func FuzzPAP(f *testing.F) {
	for _, s := range []string{"01 01 00 0c 04 74 65 73 74 02 70 77", "02 01 00 07 02 6f 6b", "02 05 00 04", "03 01 00 05 00"} {
		f.Add(unhex(f, s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParsePAP(b)
		if err != nil {
			return
		}
		back, err := ParsePAP(a.Append(nil))
		if err != nil || back.Code != a.Code || back.ID != a.ID || !bytes.Equal(back.PeerID, a.PeerID) ||
			!bytes.Equal(back.Password, a.Password) || !bytes.Equal(back.Message, a.Message) {
			t.Fatalf("% x read as %+v, read again as %+v, %v", b, a, back, err)
		}
	})
}
