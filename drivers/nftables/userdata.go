package nftables

import "errors"

// A rule's user data is a list of TLVs (libnftnl's udata: a type byte, a
// length byte, the value). nft shows type 0 as the rule's comment, a
// NUL-terminated string; braid keeps the rule's ID there, so that `nft
// list table inet braid` shows which rule is which.
const (
	udataComment = 0
	// maxIDLen keeps a comment TLV within one length byte, and within nft's
	// own limit on comments (128 bytes with the NUL).
	maxIDLen = 127
)

// encodeID returns the user data that carries a rule's ID.
func encodeID(id string) []byte {
	b := make([]byte, 0, len(id)+3)
	b = append(b, udataComment, byte(len(id)+1))
	b = append(b, id...)
	return append(b, 0)
}

// Errors of decodeID.
var (
	errNoComment  = errors.New("no comment in the rule's user data")
	errBadUData   = errors.New("malformed rule user data")
	errBadComment = errors.New("the rule's comment is not a braid rule ID")
)

// decodeID reads a rule's ID from its user data: the first comment TLV,
// which must be NUL-terminated and a valid ID. The user data comes from the
// kernel, where anyone with CAP_NET_ADMIN may have put anything: it is
// checked, never trusted.
func decodeID(b []byte) (string, error) {
	for len(b) > 0 {
		if len(b) < 2 {
			return "", errBadUData
		}
		typ, n := b[0], int(b[1])
		if len(b) < 2+n {
			return "", errBadUData
		}
		v := b[2 : 2+n]
		b = b[2+n:]
		if typ != udataComment {
			continue
		}
		if n == 0 || v[n-1] != 0 {
			return "", errBadComment
		}
		id := string(v[:n-1])
		if !validID(id) {
			return "", errBadComment
		}
		return id, nil
	}
	return "", errNoComment
}
