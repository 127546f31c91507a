package avp

import (
	"crypto/md5"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// ErrHidden: a hidden AVP that cannot be revealed.
var ErrHidden = errors.New("hidden AVP")

// Hide returns a hidden with secret, the tunnel's shared secret, and
// vector, the value of the Random Vector AVP that precedes it in its
// message (RFC 2661 4.3). pad is appended to the hidden subformat
// (Original Length, the value, the padding) so that the value's length
// does not show; the caller draws it at random. Hide fails when a is
// already hidden, when RFC 2661 forbids hiding its type, or when the
// result does not fit an AVP.
func Hide(a AVP, secret, vector, pad []byte) (AVP, error) {
	switch {
	case a.Hidden:
		return AVP{}, fmt.Errorf("%w: %s is hidden already", ErrHidden, a.Type)
	case a.Vendor == 0 && !a.Type.Hideable():
		return AVP{}, fmt.Errorf("%w: RFC 2661 forbids hiding %s", ErrHidden, a.Type)
	case len(vector) == 0:
		return AVP{}, fmt.Errorf("%w: no random vector to hide %s with", ErrHidden, a.Type)
	case 2+len(a.Value)+len(pad) > MaxValueLen:
		return AVP{}, fmt.Errorf("%w: %s: %d octets hidden with %d of padding do not fit an AVP", ErrHidden, a.Type, len(a.Value), len(pad))
	}
	sub := make([]byte, 0, 2+len(a.Value)+len(pad))
	sub = binary.BigEndian.AppendUint16(sub, uint16(len(a.Value)))
	sub = append(sub, a.Value...)
	sub = append(sub, pad...)
	hideInPlace(sub, a.Type, secret, vector)
	a.Hidden = true
	a.Value = sub
	return a, nil
}

// Unhide returns a revealed with secret and vector, the value of the
// Random Vector AVP that precedes it (RFC 2661 4.3): the original value,
// without the subformat's length and padding. A wrong secret yields
// garbage, or an error when the Original Length it reveals does not fit.
func Unhide(a AVP, secret, vector []byte) (AVP, error) {
	switch {
	case !a.Hidden:
		return a, nil
	case len(vector) == 0:
		return AVP{}, fmt.Errorf("%w: %s is hidden and no Random Vector precedes it", ErrHidden, a.Type)
	case len(a.Value) < 2:
		return AVP{}, fmt.Errorf("%w: %s: %d octets, too short for the Original Length", ErrHidden, a.Type, len(a.Value))
	}
	sub := make([]byte, len(a.Value))
	copy(sub, a.Value)
	revealInPlace(sub, a.Type, secret, vector)
	n := int(binary.BigEndian.Uint16(sub))
	if n > len(sub)-2 {
		return AVP{}, fmt.Errorf("%w: %s reveals an Original Length of %d, more than its %d octets (wrong secret?)", ErrHidden, a.Type, n, len(sub)-2)
	}
	a.Hidden = false
	a.Value = sub[2 : 2+n : 2+n]
	return a, nil
}

// hideInPlace encrypts sub, the hidden subformat of an AVP of type t:
// sub is split in 16-octet chunks p1, p2, ... (the last may be shorter),
// and chunk i is XORed with b(i), where b(1) = MD5(t as two octets, secret,
// vector) and b(i) = MD5(secret, c(i-1)), c(i-1) being the previous chunk
// once encrypted.
func hideInPlace(sub []byte, t Type, secret, vector []byte) {
	b := firstDigest(t, secret, vector)
	for off := 0; off < len(sub); off += md5.Size {
		chunk := sub[off:min(off+md5.Size, len(sub))]
		for i := range chunk {
			chunk[i] ^= b[i]
		}
		b = nextDigest(secret, chunk)
	}
}

// revealInPlace decrypts sub, hidden by hideInPlace: each chunk's
// ciphertext feeds the next chunk's digest, so it is read before it is
// XORed.
func revealInPlace(sub []byte, t Type, secret, vector []byte) {
	b := firstDigest(t, secret, vector)
	for off := 0; off < len(sub); off += md5.Size {
		chunk := sub[off:min(off+md5.Size, len(sub))]
		next := nextDigest(secret, chunk)
		for i := range chunk {
			chunk[i] ^= b[i]
		}
		b = next
	}
}

func firstDigest(t Type, secret, vector []byte) [md5.Size]byte {
	h := md5.New()
	h.Write(binary.BigEndian.AppendUint16(nil, uint16(t)))
	h.Write(secret)
	h.Write(vector)
	var d [md5.Size]byte
	h.Sum(d[:0])
	return d
}

func nextDigest(secret, cipher []byte) [md5.Size]byte {
	h := md5.New()
	h.Write(secret)
	h.Write(cipher)
	var d [md5.Size]byte
	h.Sum(d[:0])
	return d
}

// Unhide reveals m's hidden AVPs in place with secret, each with the
// Random Vector AVP that precedes it most closely (RFC 2661 4.3). It
// stops at the first it cannot reveal.
func (m *Message) Unhide(secret []byte) error {
	var vector []byte
	cloned := false
	for i, a := range m.AVPs {
		if a.Vendor == 0 && a.Type == RandomVector && !a.Hidden {
			vector = a.Value
			continue
		}
		if !a.Hidden {
			continue
		}
		if secret == nil {
			return fmt.Errorf("%w: %s: %s is hidden and there is no tunnel secret", ErrHidden, m.Type(), a.Type)
		}
		r, err := Unhide(a, secret, vector)
		if err != nil {
			return fmt.Errorf("%s: %w", m.Type(), err)
		}
		if !cloned {
			// m's AVPs may be shared with a copy of m: reveal into
			// a slice of its own.
			m.AVPs = slices.Clone(m.AVPs)
			cloned = true
		}
		m.AVPs[i] = r
	}
	return nil
}
