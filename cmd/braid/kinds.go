package main

import (
	"log/slog"

	"github.com/braid-router/braid/internal/metrics"
	"github.com/braid-router/braid/session"
	"github.com/braid-router/braid/sessions/advertise"
	"github.com/braid-router/braid/sessions/dhcp4"
	"github.com/braid-router/braid/sessions/dhcp6"
	"github.com/braid-router/braid/sessions/dhcpserver"
	"github.com/braid-router/braid/sessions/dns"
	"github.com/braid-router/braid/sessions/health"
	"github.com/braid-router/braid/sessions/health/verdict"
	"github.com/braid-router/braid/sessions/peer"
	"github.com/braid-router/braid/sessions/proxy"
	"github.com/braid-router/braid/sessions/ra"
	"github.com/braid-router/braid/sessions/tunnel"
)

// sessionHooks are what the daemon hands the sessions it runs: where they
// report what metrics count. A nil hook is not called.
type sessionHooks struct {
	// healthTransition is told of every change of an uplink's health
	// verdict (the metrics' transitions counter).
	healthTransition func(uplink string, healthy bool)
	// peerRejected is told of every connection the aggregation peer
	// rejects, with its reason (the metrics' counter).
	peerRejected func(reason string)
	// peerRejectedDatagram is told of every datagram the aggregation
	// peer's UDP relay rejects, with its reason.
	peerRejectedDatagram func(reason string)
	// peerStarted is handed each new peer session's counts of what it
	// holds (the metrics' gauges).
	peerStarted func(held func() peer.Stats)
	// proxyStarted is handed each new proxy session (the metrics' gauge
	// of its verdicts on the uplinks' MPTCP subflows).
	proxyStarted func(*proxy.Proxy)
	// dnsStarted is handed, once, what the DNS forwarder counts and knows
	// (the metrics' braid_dns_*).
	dnsStarted func(stats func() metrics.DNS)
	// stateDir is braid's state directory, where the DHCPv6 client keeps
	// a DUID-LLT when it has no MAC address to make a DUID-LL of, and the
	// LAN's DHCP server its leases.
	stateDir string
}

// sessionKinds is the registry of the session kinds this build of braid
// runs. A session the desired state names whose kind is not registered
// shows as "unavailable" in `braid status`, and its section's note in
// every plan says it is not converged yet. A test build (-tags braidtest)
// adds stand-ins (see standins.go), which replace the real kinds only
// when BRAID_STANDINS is set.
func sessionKinds(log *slog.Logger, hooks sessionHooks) *session.Registry {
	reg := &session.Registry{}
	session.Register(reg, dhcp4.Kind, func() session.Session[dhcp4.Config] { return &dhcp4.Client{} })
	session.Register(reg, ra.Kind, func() session.Session[ra.Config] { return &ra.Client{} })
	session.Register(reg, dhcp6.Kind, func() session.Session[dhcp6.Config] { return &dhcp6.Client{StateDir: hooks.stateDir} })
	session.Register(reg, tunnel.Kind, func() session.Session[tunnel.Config] { return &tunnel.Session{} })
	session.Register(reg, proxy.Kind, func() session.Session[proxy.Config] {
		p := &proxy.Proxy{}
		if hooks.proxyStarted != nil {
			hooks.proxyStarted(p)
		}
		return p
	})
	session.Register(reg, dhcpserver.Kind, func() session.Session[dhcpserver.Config] {
		return &dhcpserver.Server{StateDir: hooks.stateDir}
	})
	session.Register(reg, advertise.Kind, func() session.Session[advertise.Config] { return &advertise.Server{} })
	session.Register(reg, health.Kind, func() session.Session[health.Config] {
		t := &health.Tracker{}
		if h := hooks.healthTransition; h != nil {
			t.OnTransition = func(uplink string, tr verdict.Transition) { h(uplink, tr.Healthy) }
		}
		return t
	})
	session.Register(reg, peer.Kind, func() session.Session[peer.Config] {
		s := &peer.Server{OnReject: hooks.peerRejected, OnRejectDatagram: hooks.peerRejectedDatagram}
		if hooks.peerStarted != nil {
			hooks.peerStarted(s.Stats)
		}
		return s
	})
	dw := newDNSWiring()
	if hooks.dnsStarted != nil {
		hooks.dnsStarted(dw.metrics)
	}
	session.Register(reg, dns.Kind, func() session.Session[dns.Config] { return dw.server() })
	// Last: in a test build, stand-ins replace the kinds above.
	registerStandIns(reg, log)
	return reg
}
