// Package sessions groups braid's protocol sessions, one package per
// kind: dhcp4 (an uplink's DHCPv4 client), dhcp6 (DHCPv6 prefix
// delegation, on an uplink or over a tunnel), health (an uplink's health
// tracker), proxy (the transparent proxy: its configuration for now), ra
// (an uplink's IPv6 from router advertisements), advertise (the LAN's
// router advertisements), tunnel (the 6PE tunnel, kind l2tp, built of
// l2tp, ppp and l2tp/dataplane), and, as it lands, dns. Each package
// holds its kind's configuration, which the compiler writes, and its
// implementation of session.Session, which the daemon registers; the
// protocol's codecs and state machines live in packages of their own,
// with no sockets and no clock.
package sessions
