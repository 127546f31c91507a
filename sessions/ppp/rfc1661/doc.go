// Package rfc1661 is braid's PPP client as it runs over an L2TPv2
// session: RFC 1661's option negotiation automaton, run by LCP and
// IPV6CP (RFC 5072), LCP's echo keepalive, and the login the LNS asks
// for, CHAP with MD5 (RFC 1994) or PAP (RFC 1334). It has no socket and
// no clock: a Conn is told the time with each call (Open, Input, Timeout,
// Close) and returns what the driver must do (Send a frame, Up, Down,
// Finished, Log). So the RFCs' sequences are table tests, and the fuzzer
// reaches every decision a received frame can take.
//
// # The automaton
//
// fsm is RFC 1661 section 4's state table, row by row: its events (Up,
// Down, Open, Close, TO+/TO-, RCR+/-, RCA, RCN, RTR, RTA, RUC, RXJ+/-,
// RXR) and actions (tlu, tld, tls, tlf, irc, zrc, scr, sca, scn, str,
// sta, scj, ser), with the restart timer (3 s) and the Max-Terminate
// (2), Max-Configure (10) and Max-Failure (5) counters of section 4.6.
// A retransmitted Configure-Request keeps its Identifier, so a late Ack
// still counts: real LNSs (pppd behind xl2tpd) drop the first frames
// after the L2TP session comes up, and the restart timer covers that.
// Two additions keep a session from sticking: a peer that Naks more
// than Max-Configure requests in a row ends the negotiation
// (ErrNotConverged), and where RFC 1661 would wait in Stopped for the
// peer to start again, the link finishes instead, for the session to
// set up a new one.
//
// # What braid negotiates
//
// LCP: see lcpLayer (MRU, magic number with loop detection, the
// authentication protocol; ACCM acknowledged and ignored, PFC and ACFC
// rejected). Then the login, then IPV6CP's interface identifiers (see
// ipv6cpLayer). braid speaks no IPv4 over PPP: IPCP, IPv4 and any other
// protocol the peer sends once LCP is up are Protocol-Rejected (RFC 1661
// section 5.7), which pppd takes as "this peer has no IPCP" and goes on
// with IPV6CP.
package rfc1661
