// Package control is the LAC side of an L2TPv2 control connection (RFC
// 2661) carrying one session: tunnel establishment with tunnel
// authentication (SCCRQ, SCCRP, SCCCN), the incoming call that makes the
// session (ICRQ, ICRP, ICCN), keepalives (HELLO), teardown (CDN, StopCCN),
// and the reliable delivery underneath them all (section 5.8). It has no
// socket and no clock: a Conn is driven by its methods (Start, Receive,
// Timeout, Stop), each given the current time, and each returns the
// Actions its caller carries out: messages to send, the tunnel and the
// session coming up, the connection going down and why. Deadline says
// when Timeout is due next. Randomness (IDs, challenges) comes from
// Config.Rand.
//
// # Reliable delivery
//
// Every message but a ZLB takes the next Ns; every message carries as Nr
// the next Ns expected from the peer. A received message whose Ns is the
// one expected is processed; one already seen (a retransmission) is not
// processed again but acknowledged by a ZLB; one ahead of the expected Ns
// is kept until the gap fills (up to the receive window this side
// advertises) and processed then. A received message that needs no
// answer is acknowledged by a ZLB at once (braid has nothing to
// piggyback the acknowledgement on). At most the peer's Receive Window
// Size messages (4 when it sends none) are unacknowledged at a time; more
// wait their turn. Unacknowledged messages are sent again, with the
// current Nr, after 1 s, then 2, 4, 8, 8 s (Timing); after 5
// retransmissions without progress the connection is given up as "no
// answer from the LNS". A HELLO is sent after 60 s without a message
// from the LNS (xl2tpd sends its own every 60 s, which this side
// acknowledges like any message).
//
// # Tunnel authentication
//
// With a secret, the LAC puts a random 16-octet Challenge in its SCCRQ
// and checks the Challenge Response in the SCCRP (RFC 2661 5.1.1); a
// missing or wrong one ends the attempt with a StopCCN, result code 4
// (not authorized), and ErrAuth. A Challenge in the SCCRP is answered in
// the SCCCN; without a secret, the attempt ends the same way. When the
// LNS ends the tunnel with a StopCCN right after this side answered its
// challenge and before it accepted the call (xl2tpd says "general error,
// vendor-specific: Invalid challenge authentication"), or with result
// code 4 at any time, that too is ErrAuth. Hidden AVPs are revealed with
// the secret before a message is read.
//
// # Teardown
//
// Stop sends a CDN for the session (result 3, administrative) and a
// StopCCN with the caller's result, and the connection is Closed once the
// StopCCN is acknowledged, or given up on. A StopCCN from the LNS is
// acknowledged and closes the connection at once (section 5.7 suggests
// keeping the tunnel a retransmission cycle longer, to acknowledge the
// StopCCN again should the first acknowledgement be lost: a Done Conn
// still does, but its caller usually closes the socket; the LNS clears
// the tunnel on its own timer then). A CDN from the LNS ends the session,
// and with it the tunnel, which only carried that session.
package control
