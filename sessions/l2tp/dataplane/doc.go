// Package dataplane carries the 6PE tunnel's IPv6 packets between its TUN
// link and the L2TP session, in braid's own process: IPv6 in PPP (protocol
// 0x0057) in L2TPv2 data messages (RFC 2661 section 3.1) in UDP over IPv4,
// both ways. The L2TP control connection and PPP's negotiation are the
// session's (package l2tp): it creates the link (CreateLink), connects the
// UDP socket to the LNS, hands both to New with the tunnel's and the
// session's IDs, and gets back, through Config.Other, every datagram that
// is not an IPv6 data frame of this session (control messages, LCP, IPV6CP,
// another session's data).
//
// # The link
//
// CreateLink makes a TUN link that is not persistent: the kernel removes
// it when braid's file descriptor closes, however braid ends. It carries
// braid's mark, the alias netlink.CreatedAlias gives it ("braid:" and what
// it is for, "tunnel/sixpe"), so a reader of the kernel (and braid's
// netlink driver) tells it from a link someone else made. Its MTU is MTU of
// the uplink's MTU: the outer IPv4 (20), UDP (8), L2TP data header (6, 10
// with sequence numbers) and PPP header (4) must fit the uplink
// unfragmented. The kernel then answers a LAN host's oversized packet with
// an ICMPv6 Packet Too Big, as it does at any smaller link.
//
// # Speed
//
// The link is opened with IFF_VNET_HDR and TCP (and UDP) segmentation
// offloads, through golang.zx2c4.com/wireguard/tun: the kernel hands braid
// a forwarded TCP burst as one super-packet of up to 64 KiB, which the
// library splits into MTU-sized packets in braid's buffers, leaving room
// in front of each for the L2TP and PPP headers, written in place. Those
// packets leave with one sendmmsg(2) per read, and runs of packets of one
// size as one UDP GSO datagram (UDP_SEGMENT): the kernel segments it at
// the device, so a 64 KiB burst costs two system calls, not ninety. A
// socket whose route refuses UDP GSO loses the batch it refused, and the
// plane sends one datagram per packet from then on.
// Inbound, recvmmsg(2) takes up to a batch of datagrams per call (with
// UDP_GRO, the kernel may hand several as one, which braid splits); their
// IPv6 packets are copied into the write batch, which the library
// coalesces (TCP GRO) before it writes to the link.
//
// Buffers are allocated once, in New, and reused: a packet costs no
// allocation (BenchmarkForward reports allocs/op). The system calls are
// braid's own (x/net's ReadBatch allocates an address per message, which a
// connected socket does not need). Memory is bounded by the batches:
// about 5 MiB of buffers per plane (128 packets of the link's MTU read,
// 16 datagrams of 64 KiB received, 64 packets of 64 KiB to coalesce
// into), most of it only touched under load. The link's MTU must not
// grow while the plane runs: its read buffers are sized by it. A panic in
// either direction ends Run with an error rather than braid's process.
package dataplane
