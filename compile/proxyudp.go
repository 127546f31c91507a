package compile

import (
	"cmp"
	"fmt"

	"github.com/braid-router/braid/api"
	nl "github.com/braid-router/braid/drivers/netlink"
	nft "github.com/braid-router/braid/drivers/nftables"
	"github.com/braid-router/braid/sessions/proxy"
)

// quicPort is the UDP port of QUIC (HTTP/3), which aggregation.udp: drop
// rejects.
const quicPort = 443

// proxyUDP adds aggregation.udp's rules to the steering chain, after its
// exclusions (what does not come in on the LAN, replies, marked packets,
// the box itself, bypass, routes:, the LAN, the peer), so that they go
// with the rest of the steering: process-bound to the proxy session,
// and withdrawn with it.
//
//   - peer: LAN UDP of either family goes to the session's transparent
//     UDP socket on proxy.Port by tproxy, marked with nl.TableProxy like
//     TCP, except broadcast and multicast (a LAN's discovery protocols
//     stay on the LAN). Nothing to the box's own addresses is steered
//     (the "local" exclusion): the LAN's DNS queries to the box's
//     resolver stay there; the box's own traffic (its resolver's queries,
//     the relay's own datagrams to the peer) leaves by output, which
//     prerouting never sees.
//   - drop: LAN UDP to port 443 is rejected with a port unreachable in its
//     family (ICMP for IPv4, ICMPv6 for IPv6): QUIC falls back to TCP at
//     once, which the proxy aggregates. Other UDP goes direct. A rule
//     left behind by a dead process rejects QUIC still, harmlessly: its
//     TCP fallback then goes direct.
//   - direct: nothing; UDP is routed and NATed like any other traffic.
//
// families are those steered (false for IPv4, true for IPv6).
func proxyUDP(rs *nft.Ruleset, udp, lanIf string, families []bool) {
	switch udp {
	case api.UDPDrop:
		rs.Add(nft.ChainTProxy, "quic", nft.IIFName(lanIf), nft.DPort("udp", quicPort), nft.RejectPortUnreachable())
	case api.UDPPeer:
		rs.Add(nft.ChainTProxy, "not-unicast", nft.L4Proto("udp"), nft.DstNotUnicast(), nft.Return())
		for _, v6 := range families {
			rs.Add(nft.ChainTProxy, "udp"+familySuffix(v6), nft.IIFName(lanIf), nft.TProxy("udp", v6, proxy.Port), nft.SetMark(nl.TableProxy))
		}
	}
}

// udpOpen refuses firewall.open[i] when it opens the proxy's UDP socket
// to the WAN (aggregation.udp: peer).
func udpOpen(i int, o api.OpenPort, udp string) error {
	if udp == api.UDPPeer && cmp.Or(o.Proto, api.DefaultProto) == "udp" && o.Port == proxy.Port {
		return fmt.Errorf("firewall.open[%d]: udp port %d is the transparent proxy's UDP socket (aggregation.udp: peer): the WAN must not reach it", i, proxy.Port)
	}
	return nil
}
