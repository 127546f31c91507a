// Package policy is the answer policy of braid's DNS forwarder: what it
// changes in an upstream's answer before the LAN sees it (AAAA filtering)
// and which addresses an answer puts into an uplink's egress set
// (per-domain egress). It works on parsed messages only: no sockets, no
// clock, no nftables. The forwarder (sessions/dns, to come) calls it on
// every answer; the fuzz target reaches it with arbitrary packed answers.
//
// # Names
//
// Names are matched case-insensitively and on label boundaries: the
// suffix "example.com" matches "example.com" and "a.example.com", never
// "badexample.com". A name matches when the question's name, or any name
// the answer's CNAME chain reaches from it, is equal to or under a listed
// suffix.
//
// # AAAA filtering
//
// [AAAAFilter.Apply] removes the AAAA records and the ipv6hint SvcParam of
// HTTPS and SVCB records (RFC 9460) from an answer whose name matches, so
// that a AAAA query gets an empty NOERROR (NODATA). CNAMEs stay, so the
// answer still tells the truth about aliases; NXDOMAIN and SERVFAIL are
// left as they are. The authority section keeps the upstream's SOA (an
// upstream NODATA has one) and loses its NS records: RFC 2308 section 5
// says a negative answer without an SOA is not cached, and section 2.2
// that one with NS records looks like a referral. braid does not invent an
// SOA when the upstream answered with data: it has no zone's SOA to give,
// and the forwarder's own cache holds the upstream's answer anyway, so a
// client re-asking costs no upstream query. RRSIGs over the records it
// removed or changed go too; a client validating DNSSEC itself sees the
// filtered sets unsigned, which is what they are.
//
// # Per-domain egress
//
// [Egress.Elements] lists, for an answer, the addresses to add to an
// uplink's egress set: the A and AAAA records and the ipv4hint and
// ipv6hint of HTTPS and SVCB records in the answer section, owned by the
// question's name or a name its CNAME chain reaches, from the first name
// of the chain that matches a route's domain on. Addresses of other names
// in the answer (not on the chain) never count, so an upstream cannot
// steer an unrelated address by adding records. Each element's timeout is
// max(TTL, 10 minutes).
package policy
