package avp

import (
	"bytes"
	"encoding/hex"
	"reflect"
	"testing"
)

// FuzzParse reads arbitrary datagrams as L2TP packets: Parse never
// panics, and a payload it returns lies within the datagram, after the
// header it read.
func FuzzParse(f *testing.F) {
	for _, s := range []string{xlSCCRQ, xlZLB, xlCDN, "0002123456780ff03c021", "4a0200121234567800010000000002aabbff03"} {
		b, _ := hex.DecodeString(s)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, payload, err := Parse(b)
		if err != nil {
			return
		}
		if len(payload) > len(b)-h.Len() {
			t.Fatalf("payload of %d octets after a header of %d in %d", len(payload), h.Len(), len(b))
		}
		if h.HasLength && h.Len()+len(payload) > len(b) {
			t.Fatalf("header %+v and payload %d past the datagram's %d octets", h, len(payload), len(b))
		}
	})
}

// FuzzParseMessage reads arbitrary datagrams as control messages: what
// ParseMessage accepts, Append writes back into a message that parses the
// same; revealing hidden AVPs and reading every accessor never panics.
func FuzzParseMessage(f *testing.F) {
	for _, s := range []string{xlSCCRQ, xlSCCRP, xlSCCCN, xlZLB, xlICRQ, xlICRP, xlICCN, xlCDN} {
		b, _ := hex.DecodeString(s)
		f.Add(b)
	}
	s1, _ := Hide(Uint16(AssignedSessionID, 1), hideSecret, hideVector, []byte{1, 2, 3})
	hidden, _ := NewMessage(ICRQ, 1, 0, New(RandomVector, hideVector), s1).Append(nil)
	f.Add(hidden)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMessage(b)
		if err != nil {
			return
		}
		out, err := m.Append(nil)
		if err != nil {
			t.Fatalf("a parsed message does not append: %v", err)
		}
		again, err := ParseMessage(out)
		if err != nil {
			t.Fatalf("what Append wrote does not parse: %v\n%x", err, out)
		}
		if !reflect.DeepEqual(normalize(again), normalize(m)) {
			t.Fatalf("round trip:\n%+v\n%+v", again, m)
		}
		_ = m.String()
		if err := m.Unhide(hideSecret); err != nil {
			return
		}
		for _, a := range m.AVPs {
			_ = a.String()
			_, _, _ = m.Uint16(a.Type)
			_, _, _ = m.Uint32(a.Type)
			_, _, _ = m.Bytes(a.Type, 1)
		}
		if r, ok, err := m.Result(); ok && err == nil {
			_ = r.Describe(m.Type())
		}
	})
}

// normalize makes empty AVP values comparable.
func normalize(m Message) Message {
	for i := range m.AVPs {
		if len(m.AVPs[i].Value) == 0 {
			m.AVPs[i].Value = nil
		}
	}
	return m
}

// FuzzHide: whatever the value, padding and secret, Unhide reveals what
// Hide hid.
func FuzzHide(f *testing.F) {
	f.Add([]byte{0xb6, 0x93}, []byte{}, []byte("6pe"), hideVector)
	f.Add([]byte("a vendor name longer than sixteen octets"), []byte{1, 2, 3}, []byte("s"), []byte{1})
	f.Fuzz(func(t *testing.T, value, pad, secret, vector []byte) {
		h, err := Hide(New(CalledNumber, value), secret, vector, pad)
		if err != nil {
			return
		}
		r, err := Unhide(h, secret, vector)
		if err != nil || !bytes.Equal(r.Value, value) {
			t.Fatalf("Unhide(Hide(%x)) = %x, %v", value, r.Value, err)
		}
	})
}
