// Package probe checks that something on the network answers: an ICMP or
// ICMPv6 echo, a TCP connect, or a DNS query. The daemon's trials use it
// for management probes and the aggregation peer, and an uplink's health
// tracker for its probes, bound to the uplink's interface and addresses.
//
// A Target says what to check; a Prober checks it, optionally bound to an
// interface (SO_BINDTODEVICE) and to a source address of the target's
// family. Every probe sends one request and waits for its answer until its
// context ends: the caller's deadline is the probe's timeout, and a lost
// packet is a failed probe (callers probe again on their own schedule).
//
// # What answers
//
//   - icmp: an echo reply (ICMP type 0, or ICMPv6 type 129, code 0) from
//     the target's own address, carrying the request's identifier,
//     sequence number and data. Replies to anyone else's echo, from
//     another address, or of another type are ignored.
//   - tcp: the three-way handshake completes: the service accepts. With
//     Prober.RefusedAnswers, a refused connection (a TCP reset, or an ICMP
//     port unreachable, which the kernel reports the same way) counts too:
//     something at the far end answered, so the path works, which is what
//     an uplink's health asks and a management probe does not.
//   - dns: a DNS message over UDP from the server's address and port that
//     is a response (QR set) and carries the query's identifier, whatever
//     its RCODE: a server that says SERVFAIL or NXDOMAIN is up. The query
//     is for the target's name, type A, class IN, recursion desired.
//
// # Sockets
//
// ICMP probes use raw sockets (ip4:icmp, ip6:ipv6-icmp), one per probe,
// not the kernel's unprivileged ICMP datagram ("ping") sockets. Those
// would be the better fit (the kernel picks the identifier and delivers
// each socket only its own replies), but Linux allows them only to the
// groups in net.ipv4.ping_group_range, which is per network namespace and
// "1 0" (nobody, root included) in every namespace created without it
// being set: braid runs inside such namespaces (`--netns`), and it must not
// change a namespace-wide setting to probe. braid runs as root, which raw
// sockets need (CAP_NET_RAW). A raw socket sees every ICMP message the
// namespace receives, so the kernel filter (ICMP_FILTER, ICMP6_FILTER)
// passes only echo replies, and each probe recognises its own by the
// identifier and sequence number, both random per probe, by 16 random
// bytes of data that a reply must echo, and by the reply's source. Many
// probes at once in one process (a health tracker probing four uplinks
// every 500 ms while a trial probes its targets) each open their own
// socket and never take another's reply; each socket lives for one round
// trip, and each reply wakes every echo socket open at the time, which
// costs nothing at these rates. A socket bound to a source address only
// receives what is addressed to it, and one bound to an interface only
// what arrives on it.
//
// TCP probes are a net.Dialer connect. DNS probes use a connected UDP
// socket, so the kernel delivers only datagrams from the server's address
// and port, and an ICMP port unreachable ends the probe at once.
//
// The codecs (the echo request and its reply's matching, the DNS query
// and the header of its response) are pure functions with no sockets,
// table-tested and fuzzed. The DNS codec is written here rather than taken
// from github.com/miekg/dns: a probe builds one fixed query and reads
// twelve bytes of the response, which is less code than the glue a
// general library would need, and one less dependency.
package probe
