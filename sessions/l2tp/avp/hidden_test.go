package avp

import (
	"bytes"
	"errors"
	"testing"
)

// The hidden values below were computed by a separate implementation (a
// few lines of Python's hashlib) of RFC 2661 4.3: the subformat (Original
// Length, value, padding) XORed chunk by chunk with MD5(type, secret,
// vector), then MD5(secret, previous ciphertext chunk).
var (
	hideSecret = []byte("6pe")
	hideVector = []byte{0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff}
)

func TestHide(t *testing.T) {
	for _, tc := range []struct {
		name   string
		avp    AVP
		pad    []byte
		hidden string
	}{{
		name:   "one partial chunk, no padding",
		avp:    Uint16(AssignedSessionID, 0xb693),
		hidden: "96ddda67",
	}, {
		name:   "padding into a second, partial chunk",
		avp:    Uint16(AssignedSessionID, 0xb693),
		pad:    []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13},
		hidden: "96ddda67cd866521fcf6e04e6dc2601872ca",
	}, {
		name:   "three whole chunks: the chain of digests",
		avp:    String(VendorName, "a vendor name longer than sixteen octets"),
		pad:    []byte{0xa5, 0xa5, 0xa5, 0xa5, 0xa5, 0xa5},
		hidden: "805bec22cec8057717d0a2d168c3654f870741c4956f82faff6cb32649595c562d19b5d56b93e2de8a1030f7a1e64c1c",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := Hide(tc.avp, hideSecret, hideVector, tc.pad)
			if err != nil {
				t.Fatal(err)
			}
			if !h.Hidden || h.Type != tc.avp.Type || h.Mandatory != tc.avp.Mandatory || !bytes.Equal(h.Value, unhex(t, tc.hidden)) {
				t.Fatalf("Hide = %+v, want value %s", h, tc.hidden)
			}
			r, err := Unhide(h, hideSecret, hideVector)
			if err != nil {
				t.Fatal(err)
			}
			if r.Hidden || !bytes.Equal(r.Value, tc.avp.Value) {
				t.Errorf("Unhide = %+v, want %x", r, tc.avp.Value)
			}
			if _, err := Unhide(h, []byte("6pf"), hideVector); err == nil {
				// A wrong secret reveals garbage; with padding the
				// Original Length is then almost surely too long.
				if len(tc.pad) > 0 {
					t.Logf("a wrong secret revealed a plausible length")
				}
			}
		})
	}
}

func TestHideRefuses(t *testing.T) {
	for _, tc := range []struct {
		name   string
		avp    AVP
		vector []byte
		pad    []byte
	}{
		{"the Message Type", Uint16(MessageTypeAVP, 1), hideVector, nil},
		{"the Random Vector", New(RandomVector, hideVector), hideVector, nil},
		{"the Host Name", String(HostName, "lac"), hideVector, nil},
		{"already hidden", AVP{Hidden: true, Type: AssignedSessionID}, hideVector, nil},
		{"no vector", Uint16(AssignedSessionID, 1), nil, nil},
		{"too long", Uint16(AssignedSessionID, 1), hideVector, make([]byte, MaxValueLen)},
	} {
		if _, err := Hide(tc.avp, hideSecret, tc.vector, tc.pad); !errors.Is(err, ErrHidden) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, ErrHidden)
		}
	}
}

func TestUnhideErrors(t *testing.T) {
	h, err := Hide(Uint16(AssignedSessionID, 7), hideSecret, hideVector, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Unhide(h, hideSecret, nil); !errors.Is(err, ErrHidden) {
		t.Errorf("without a vector: %v", err)
	}
	if _, err := Unhide(AVP{Hidden: true, Type: AssignedSessionID, Value: []byte{1}}, hideSecret, hideVector); !errors.Is(err, ErrHidden) {
		t.Errorf("one octet: %v", err)
	}
	// An Original Length longer than what follows it.
	long, _ := Hide(Uint16(AssignedSessionID, 7), hideSecret, hideVector, nil)
	long.Value = long.Value[:3]
	if _, err := Unhide(long, hideSecret, hideVector); !errors.Is(err, ErrHidden) {
		t.Errorf("a truncated hidden value: %v", err)
	}
	if a := Uint16(AssignedSessionID, 7); true {
		if r, err := Unhide(a, hideSecret, hideVector); err != nil || !bytes.Equal(r.Value, a.Value) {
			t.Errorf("Unhide of a clear AVP = %+v, %v", r, err)
		}
	}
}

// TestMessageUnhide reveals each hidden AVP with the Random Vector that
// precedes it most closely, in a received message.
func TestMessageUnhide(t *testing.T) {
	v1 := hideVector
	v2 := []byte("another vector")
	s1, _ := Hide(Uint16(AssignedSessionID, 1), hideSecret, v1, []byte{9, 9})
	s2, _ := Hide(NewResult(Result{Code: CDNAdmin, Message: "bye"}), hideSecret, v2, nil)
	m := NewMessage(CDN, 1, 2, New(RandomVector, v1), s1, New(RandomVector, v2), s2)
	b, err := m.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	shared := got // a copy sharing got's AVPs must keep its hidden values
	if err := got.Unhide(hideSecret); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := got.Uint16(AssignedSessionID); !ok || err != nil || v != 1 {
		t.Errorf("Assigned Session ID = %d, %v, %v", v, ok, err)
	}
	if r, ok, err := got.Result(); !ok || err != nil || r.Code != CDNAdmin || r.Message != "bye" {
		t.Errorf("Result = %+v, %v, %v", r, ok, err)
	}
	if a, _ := shared.Find(AssignedSessionID); !a.Hidden {
		t.Error("Unhide changed a copy of the message")
	}
	// Without a secret, or without a vector before it, a hidden AVP
	// stays hidden and Unhide says why.
	if err := shared.Unhide(nil); !errors.Is(err, ErrHidden) {
		t.Errorf("Unhide(nil) = %v", err)
	}
	novec := NewMessage(CDN, 1, 2, s1)
	if err := novec.Unhide(hideSecret); !errors.Is(err, ErrHidden) {
		t.Errorf("Unhide without a vector = %v", err)
	}
}
