package rfc2131

import (
	"net"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// Requested are the parameters the client asks for (option 55): what a
// lease is made of, and nothing braid does not use.
var Requested = []dhcpv4.OptionCode{
	dhcpv4.OptionSubnetMask,
	dhcpv4.OptionRouter,
	dhcpv4.OptionDomainNameServer,
	dhcpv4.OptionIPAddressLeaseTime,
	dhcpv4.OptionRenewTimeValue,
	dhcpv4.OptionRebindingTimeValue,
}

// flagBroadcast asks servers to broadcast their answers (RFC 2131 4.1):
// a client without an address takes them from a raw socket, and a
// unicast answer to an address the box does not hold yet would be
// forwarded by its kernel as a router's.
const flagBroadcast = 0x8000

// send builds a message of type typ for the current phase, as RFC 2131's
// Table 5 says, and the action that sends it from from to to.
func (c *Client) send(typ dhcpv4.MessageType, now time.Time, to, from netip.Addr) Send {
	m := &dhcpv4.DHCPv4{
		OpCode:        dhcpv4.OpcodeBootRequest,
		HWType:        iana.HWTypeEthernet,
		TransactionID: c.xid,
		ClientIPAddr:  net.IPv4zero,
		YourIPAddr:    net.IPv4zero,
		ServerIPAddr:  net.IPv4zero,
		GatewayIPAddr: net.IPv4zero,
		ClientHWAddr:  append(net.HardwareAddr(nil), c.id.HWAddr...),
		Options:       dhcpv4.Options{},
	}
	m.UpdateOption(dhcpv4.OptMessageType(typ))
	if len(c.id.ClientID) > 0 {
		m.UpdateOption(dhcpv4.OptClientIdentifier(c.id.ClientID))
	}
	if typ == dhcpv4.MessageTypeDiscover || typ == dhcpv4.MessageTypeRequest {
		// DECLINE and RELEASE carry none of these (Table 5: MUST NOT).
		if c.id.VendorClass != "" {
			m.UpdateOption(dhcpv4.OptClassIdentifier(c.id.VendorClass))
		}
		if c.id.Hostname != "" {
			m.UpdateOption(dhcpv4.OptHostName(c.id.Hostname))
		}
		m.UpdateOption(dhcpv4.OptParameterRequestList(Requested...))
		// secs: since the client began to look for a lease, or to renew
		// it; the REQUEST for an offer repeats its DISCOVER's.
		m.NumSeconds = secondsSince(c.began, now)
		if c.phase == Selecting || c.phase == Requesting {
			m.NumSeconds = c.secs
		}
	}
	switch {
	case typ == dhcpv4.MessageTypeDiscover:
	case typ == dhcpv4.MessageTypeRequest && c.phase == Requesting:
		m.UpdateOption(dhcpv4.OptRequestedIPAddress(ip(c.offer.Address.Addr())))
		m.UpdateOption(dhcpv4.OptServerIdentifier(ip(c.offer.Server)))
	case typ == dhcpv4.MessageTypeRequest && c.phase == Rebooting:
		m.UpdateOption(dhcpv4.OptRequestedIPAddress(ip(c.lease.Address.Addr())))
	case typ == dhcpv4.MessageTypeRequest: // renewing, rebinding
		m.ClientIPAddr = ip(c.lease.Address.Addr())
	case typ == dhcpv4.MessageTypeDecline:
		m.UpdateOption(dhcpv4.OptRequestedIPAddress(ip(c.offer.Address.Addr())))
		m.UpdateOption(dhcpv4.OptServerIdentifier(ip(c.offer.Server)))
	case typ == dhcpv4.MessageTypeRelease:
		m.ClientIPAddr = ip(c.lease.Address.Addr())
		m.UpdateOption(dhcpv4.OptServerIdentifier(ip(c.lease.Server)))
	}
	if from.IsUnspecified() && to == Broadcast && typ != dhcpv4.MessageTypeDecline {
		m.Flags = flagBroadcast
	}
	return Send{Msg: m, To: to, From: from}
}

func ip(a netip.Addr) net.IP { return net.IP(a.AsSlice()) }
