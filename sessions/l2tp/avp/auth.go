package avp

import "crypto/md5"

// Respond computes the Challenge Response to a Challenge AVP (RFC 2661 4.4.3,
// 5.1.1): MD5 over the one-octet type of the message that carries the
// response (SCCRP from an LNS, SCCCN from a LAC), the tunnel's shared
// secret, and the challenge, as CHAP computes it (RFC 1994) with the
// message type for its identifier.
func Respond(carrier MessageType, secret, challenge []byte) [md5.Size]byte {
	h := md5.New()
	h.Write([]byte{byte(carrier)})
	h.Write(secret)
	h.Write(challenge)
	var d [md5.Size]byte
	h.Sum(d[:0])
	return d
}
