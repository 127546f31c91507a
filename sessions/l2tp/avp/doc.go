// Package avp is the wire format of L2TPv2 (RFC 2661): the header every
// L2TP packet starts with (section 3.1), control messages and their
// attribute-value pairs (section 4.1, the AVPs of section 4.4), hidden
// AVPs (section 4.3), the Challenge Response of tunnel authentication
// (sections 4.4.3 and 5.1.1), and the Result Code AVP of StopCCN and CDN
// (section 4.4.2). It has no sockets and no clock: it turns bytes into
// values and values into bytes, and its randomness (a Random Vector, a
// hidden AVP's padding) comes from its callers.
//
// # Decoding
//
// Parse reads any L2TP packet's header and returns its payload: the AVPs
// of a control message (T bit set), or the PPP frame of a data message.
// ParseMessage reads a whole control message, with the rules of section
// 3.1 for control messages (L and S set, O and P clear), the AVP rules of
// section 4.1 (lengths, the Message Type first), and keeps every AVP as it
// came, hidden ones still hidden: Message.Unhide reveals them with the
// tunnel's secret and the Random Vector that precedes each one. Values are
// read by the accessors (Message.Uint16 and friends), which check each
// AVP's length.
//
// # What peers do that the RFC does not say
//
// xl2tpd (the LNS braid is tested against) refuses a Result Code AVP
// shorter than 10 octets (without its Error Code, which the RFC makes
// optional), and reads an AVP's type without its Vendor ID. So
// NewResult always writes the Error Code, and braid sends no vendor AVP.
package avp
