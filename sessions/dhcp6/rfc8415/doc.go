// Package rfc8415 is braid's DHCPv6 client for prefix delegation, as RFC
// 8415 describes it: one IA_PD, its exchanges (Solicit and Advertise,
// Request, Renew, Rebind and Release, each answered by Reply), the
// retransmission of each message (section 15), the lifetimes of the
// delegated prefixes, and the DNS Recursive Name Server option (RFC 3646).
// It has no socket and no clock: a Client is a value, and Step turns
// (client, event, now) into the next client and the actions the session
// carries out (send a message, publish or withdraw the delegation). So
// the RFC's rules are table tests, and the fuzzer reaches the whole
// decision path of a received message.
//
// Messages and options are insomniacslk/dhcp's dhcpv6 types. What this
// package adds is what that library leaves to its users: the state
// machine, its timers, the checks of RFC 8415 section 16 on what a client
// accepts, and the SOL_MAX_RT option (section 21.24), which the library
// only carries as an opaque option.
//
// # Timers
//
// Every message is retransmitted as section 15 says: the first wait is
// IRT (plus RAND × IRT, RAND uniform in [-0.1, +0.1]), each next one twice
// the last plus RAND × it, capped at MRT (plus RAND × MRT), until MRC
// transmissions or MRD have passed. The parameters are section 7.6's:
//
//	Solicit  IRT SOL_TIMEOUT 1 s   MRT SOL_MAX_RT 3600 s (or the server's option 82)
//	Request  IRT REQ_TIMEOUT 1 s   MRT REQ_MAX_RT 30 s    MRC REQ_MAX_RC 10
//	Renew    IRT REN_TIMEOUT 10 s  MRT REN_MAX_RT 600 s   MRD until T2
//	Rebind   IRT REB_TIMEOUT 10 s  MRT REB_MAX_RT 600 s   MRD until every prefix's valid lifetime ends
//	Release  IRT REL_TIMEOUT 1 s                          MRC REL_MAX_RC 4
//
// The first Solicit waits a random time up to SOL_MAX_DELAY (1 s), and
// its first wait has a RAND strictly above zero; the client collects
// Advertises until that first wait ends, then requests from the most
// preferred server (at once for a preference of 255). A delegation
// renews at T1 with its server, rebinds at T2 with any, and ends when
// the last prefix's valid lifetime does; T1 and T2 of zero are the
// client's: 0.5 and 0.8 of the shortest preferred lifetime (section
// 14.2). A client restarted with prefixes that are still valid rebinds
// them at once (section 18.2.12). Tests shorten every one of these
// through Timing; the defaults are the RFC's.
package rfc8415
