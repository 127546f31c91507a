package frame

import (
	"fmt"
	"strconv"
	"strings"
)

// Describe writes a frame for a debug log, as pppd's debug output does:
// "LCP Configure-Request id=0x1 <mru 1500> <magic 0x12345678>". A PAP
// password is never written, nor a CHAP value (a hash of the password);
// IPv6 and IPv4 data are named with their length only.
func Describe(b []byte) string {
	f, err := Parse(b)
	if err != nil {
		return fmt.Sprintf("malformed frame (%v)", err)
	}
	name := ProtocolName(f.Protocol)
	switch f.Protocol {
	case ProtoLCP, ProtoIPCP, ProtoIPV6CP, ProtoCCP:
		p, err := ParsePacket(f.Info)
		if err != nil {
			return fmt.Sprintf("%s malformed (%v)", name, err)
		}
		return name + " " + describePacket(f.Protocol, p)
	case ProtoCHAP:
		c, err := ParseCHAP(f.Info)
		if err != nil {
			return fmt.Sprintf("CHAP malformed (%v)", err)
		}
		s := fmt.Sprintf("CHAP %s id=0x%x", chapCodeName(c.Code), c.ID)
		switch c.Code {
		case CHAPChallenge, CHAPResponse:
			s += fmt.Sprintf(" <%d-octet value> name=%s", len(c.Value), strconv.Quote(string(c.Name)))
		default:
			s += " " + strconv.Quote(string(c.Message))
		}
		return s
	case ProtoPAP:
		a, err := ParsePAP(f.Info)
		if err != nil {
			return fmt.Sprintf("PAP malformed (%v)", err)
		}
		switch a.Code {
		case PAPRequest:
			return fmt.Sprintf("PAP Authenticate-Request id=0x%x peer-id=%s password=(redacted)", a.ID, strconv.Quote(string(a.PeerID)))
		case PAPAck:
			return fmt.Sprintf("PAP Authenticate-Ack id=0x%x %s", a.ID, strconv.Quote(string(a.Message)))
		default:
			return fmt.Sprintf("PAP Authenticate-Nak id=0x%x %s", a.ID, strconv.Quote(string(a.Message)))
		}
	}
	return fmt.Sprintf("%s, %d octets", name, len(f.Info))
}

// describePacket writes a control packet of protocol proto.
func describePacket(proto uint16, p Packet) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s id=0x%x", CodeName(p.Code), p.ID)
	switch p.Code {
	case ConfigureRequest, ConfigureAck, ConfigureNak, ConfigureReject:
		opts, err := ParseOptions(p.Data)
		if err != nil {
			fmt.Fprintf(&b, " malformed options (%v)", err)
			break
		}
		for _, o := range opts {
			b.WriteString(" <" + describeOption(proto, o) + ">")
		}
	case TerminateRequest, TerminateAck:
		if len(p.Data) > 0 {
			b.WriteString(" " + strconv.Quote(string(p.Data)))
		}
	case CodeReject:
		if len(p.Data) > 0 {
			fmt.Fprintf(&b, " of %s", CodeName(p.Data[0]))
		}
	case ProtocolReject:
		if r, ok := RejectedProtocol(p.Data); ok {
			fmt.Fprintf(&b, " of %s", ProtocolName(r))
		}
	case EchoRequest, EchoReply, DiscardRequest:
		if m, ok := EchoMagic(p.Data); ok && proto == ProtoLCP {
			fmt.Fprintf(&b, " magic=0x%x", m)
		}
	}
	return b.String()
}

// describeOption writes one option as pppd names it.
func describeOption(proto uint16, o Option) string {
	switch {
	case proto == ProtoLCP && o.Type == LCPMRU:
		if v, ok := o.Uint16(); ok {
			return fmt.Sprintf("mru %d", v)
		}
	case proto == ProtoLCP && o.Type == LCPACCM:
		if v, ok := o.Uint32(); ok {
			return fmt.Sprintf("asyncmap 0x%x", v)
		}
	case proto == ProtoLCP && o.Type == LCPMagic:
		if v, ok := o.Uint32(); ok {
			return fmt.Sprintf("magic 0x%x", v)
		}
	case proto == ProtoLCP && o.Type == LCPAuthProtocol:
		if p, data, ok := o.AuthProtocol(); ok {
			if p == ProtoCHAP && len(data) == 1 && data[0] == CHAPMD5Algorithm {
				return "auth chap MD5"
			}
			return fmt.Sprintf("auth %s % x", ProtocolName(p), data)
		}
	case proto == ProtoLCP && o.Type == LCPPFC && len(o.Data) == 0:
		return "pcomp"
	case proto == ProtoLCP && o.Type == LCPACFC && len(o.Data) == 0:
		return "accomp"
	case proto == ProtoIPV6CP && o.Type == IPV6CPInterfaceID:
		if id, ok := o.InterfaceID(); ok {
			return fmt.Sprintf("addr %x:%x:%x:%x", uint16(id[0])<<8|uint16(id[1]), uint16(id[2])<<8|uint16(id[3]),
				uint16(id[4])<<8|uint16(id[5]), uint16(id[6])<<8|uint16(id[7]))
		}
	case proto == ProtoIPCP && (o.Type == IPCPAddress || o.Type >= IPCPPrimaryDNS && o.Type <= IPCPSecondNBNS):
		if a, ok := o.IPv4(); ok {
			return fmt.Sprintf("option %d %s", o.Type, a)
		}
	}
	return fmt.Sprintf("option %d % x", o.Type, o.Data)
}
