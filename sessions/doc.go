// Package sessions groups braid's protocol sessions, one package per
// kind: dhcp4 (an uplink's DHCPv4 client), health (an uplink's health
// tracker), proxy (the transparent proxy: its configuration for now), ra
// (an uplink's IPv6 from router advertisements), advertise (the LAN's
// router advertisements), and, as they land, l2tp
// (6PE) and dns. Each
// package holds its kind's configuration, which the compiler writes, and
// its implementation of session.Session, which the daemon registers; the
// protocol's codecs and state machines live in packages of their own,
// with no sockets and no clock.
package sessions
