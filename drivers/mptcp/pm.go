package mptcp

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// The generic netlink family of the in-kernel path manager, its commands
// and attributes (linux/mptcp.h, linux/mptcp_pm.h).
const (
	familyName = "mptcp_pm"

	cmdAddAddr   = 1
	cmdDelAddr   = 2
	cmdGetAddr   = 3
	cmdSetLimits = 5
	cmdGetLimits = 6
	cmdSetFlags  = 7

	attrAddr        = 1 // nested address
	attrRcvAddAddrs = 2 // u32
	attrSubflows    = 3 // u32

	addrAttrFamily = 1 // u16
	addrAttrID     = 2 // u8
	addrAttrAddr4  = 3 // struct in_addr
	addrAttrAddr6  = 4 // struct in6_addr
	addrAttrPort   = 5 // u16
	addrAttrFlags  = 6 // u32
	addrAttrIfIdx  = 7 // s32
)

// requestTimeout bounds one request: a kernel that never answers must not
// hang braid forever.
const requestTimeout = 30 * time.Second

// ErrUnsupported is wrapped by the error of a driver whose kernel has no
// MPTCP path manager (no generic netlink family mptcp_pm).
var ErrUnsupported = errors.New("the kernel has no MPTCP path manager (generic netlink family " + familyName + ")")

// kernelEndpoint is an endpoint as the kernel reports it.
type kernelEndpoint struct {
	ID      uint8
	Addr    netip.Addr
	Port    uint16
	Flags   Flags
	IfIndex int32
}

// pm is a generic netlink socket to the in-kernel path manager.
type pm struct {
	c      *genetlink.Conn
	family genetlink.Family
}

// dialPM opens a socket in the network namespace of the calling thread and
// resolves the family.
func dialPM() (*pm, error) {
	c, err := genetlink.Dial(nil)
	if err != nil {
		return nil, fmt.Errorf("open generic netlink socket: %w", err)
	}
	// Best effort: with it, a refusal carries the kernel's explanation.
	_ = c.SetOption(netlink.ExtendedAcknowledge, true)
	f, err := c.GetFamily(familyName)
	if err != nil {
		c.Close()
		if errors.Is(err, unix.ENOENT) {
			return nil, ErrUnsupported
		}
		return nil, fmt.Errorf("find generic netlink family %s: %w", familyName, kernelError(err))
	}
	return &pm{c: c, family: f}, nil
}

func (p *pm) close() error { return p.c.Close() }

// execute sends one request and returns the answers.
func (p *pm) execute(cmd uint8, data []byte, flags netlink.HeaderFlags) ([]genetlink.Message, error) {
	if err := p.c.SetDeadline(time.Now().Add(requestTimeout)); err != nil {
		return nil, err
	}
	msgs, err := p.c.Execute(genetlink.Message{
		Header: genetlink.Header{Command: cmd, Version: p.family.Version},
		Data:   data,
	}, p.family.ID, netlink.Request|flags)
	return msgs, kernelError(err)
}

// endpoints dumps every endpoint of the namespace. A dump of at most eight
// endpoints fits in one answer, so it cannot be interrupted by a change.
func (p *pm) endpoints() ([]kernelEndpoint, error) {
	msgs, err := p.execute(cmdGetAddr, nil, netlink.Dump)
	if err != nil {
		return nil, fmt.Errorf("list mptcp endpoints: %w", err)
	}
	out := make([]kernelEndpoint, 0, len(msgs))
	for _, m := range msgs {
		e, err := decodeEndpoint(m.Data)
		if err != nil {
			return nil, fmt.Errorf("list mptcp endpoints: %w", err)
		}
		out = append(out, e)
	}
	return out, nil
}

// endpoint returns the endpoint with the given id, and false if there is
// none.
func (p *pm) endpoint(id uint8) (kernelEndpoint, bool, error) {
	data, err := encodeRequest(func(ae *netlink.AttributeEncoder) { ae.Uint8(addrAttrID, id) })
	if err != nil {
		return kernelEndpoint{}, false, err
	}
	msgs, err := p.execute(cmdGetAddr, data, 0)
	if isNotFound(err) {
		return kernelEndpoint{}, false, nil
	}
	if err != nil {
		return kernelEndpoint{}, false, fmt.Errorf("get mptcp endpoint id %d: %w", id, err)
	}
	if len(msgs) != 1 {
		return kernelEndpoint{}, false, fmt.Errorf("get mptcp endpoint id %d: %d answers", id, len(msgs))
	}
	e, err := decodeEndpoint(msgs[0].Data)
	if err != nil {
		return kernelEndpoint{}, false, fmt.Errorf("get mptcp endpoint id %d: %w", id, err)
	}
	return e, true, nil
}

// add creates an endpoint. With an ID of 0 the kernel picks one (or takes
// over the id of an implicit endpoint with the same address).
func (p *pm) add(e kernelEndpoint) error {
	data, err := encodeRequest(func(ae *netlink.AttributeEncoder) { encodeAddr(ae, e) })
	if err != nil {
		return err
	}
	_, err = p.execute(cmdAddAddr, data, netlink.Acknowledge)
	return err
}

// del deletes the endpoint with the given id. Id 0 is refused here: to the
// kernel it means "the address of every connection's first subflow".
func (p *pm) del(id uint8) error {
	if id == 0 {
		return errors.New("refusing to delete mptcp endpoint id 0")
	}
	data, err := encodeRequest(func(ae *netlink.AttributeEncoder) { ae.Uint8(addrAttrID, id) })
	if err != nil {
		return err
	}
	_, err = p.execute(cmdDelAddr, data, netlink.Acknowledge)
	return err
}

// setFlags changes the backup and fullmesh flags of the endpoint with the
// given id; the kernel ignores the other bits.
func (p *pm) setFlags(id uint8, f Flags) error {
	data, err := encodeRequest(func(ae *netlink.AttributeEncoder) {
		ae.Uint8(addrAttrID, id)
		ae.Uint32(addrAttrFlags, uint32(f))
	})
	if err != nil {
		return err
	}
	_, err = p.execute(cmdSetFlags, data, netlink.Acknowledge)
	return err
}

// limits reads the namespace's limits.
func (p *pm) limits() (Limits, error) {
	msgs, err := p.execute(cmdGetLimits, nil, 0)
	if err != nil {
		return Limits{}, fmt.Errorf("get mptcp limits: %w", err)
	}
	if len(msgs) != 1 {
		return Limits{}, fmt.Errorf("get mptcp limits: %d answers", len(msgs))
	}
	l, err := decodeLimits(msgs[0].Data)
	if err != nil {
		return Limits{}, fmt.Errorf("get mptcp limits: %w", err)
	}
	return l, nil
}

// setLimits sets both limits.
func (p *pm) setLimits(l Limits) error {
	ae := netlink.NewAttributeEncoder()
	ae.Uint32(attrRcvAddAddrs, l.AddAddrAccepted)
	ae.Uint32(attrSubflows, l.Subflows)
	data, err := ae.Encode()
	if err != nil {
		return err
	}
	_, err = p.execute(cmdSetLimits, data, netlink.Acknowledge)
	return err
}

// kernelError turns a netlink error into its errno, with the kernel's
// extended acknowledgement message when there is one, so that errors.Is
// works on the result.
func kernelError(err error) error {
	var oe *netlink.OpError
	if !errors.As(err, &oe) {
		return err
	}
	var errno unix.Errno
	if !errors.As(oe.Err, &errno) {
		return err
	}
	if oe.Message != "" {
		return fmt.Errorf("%w (%s)", errno, oe.Message)
	}
	return errno
}

// isNotFound reports whether the kernel says an endpoint id is unknown: it
// answers EINVAL ("address not found"); ENOENT is accepted too.
func isNotFound(err error) bool {
	return errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT)
}

// encodeRequest encodes a request whose only top-level attribute is the
// nested address, whose attributes fn writes.
func encodeRequest(fn func(ae *netlink.AttributeEncoder)) ([]byte, error) {
	ae := netlink.NewAttributeEncoder()
	ae.Nested(attrAddr, func(nae *netlink.AttributeEncoder) error {
		fn(nae)
		return nil
	})
	return ae.Encode()
}

// encodeAddr writes the attributes of a whole endpoint: family, id (when
// not 0: 0 lets the kernel choose), address, port (when not 0), flags and
// interface (when not 0).
func encodeAddr(ae *netlink.AttributeEncoder, e kernelEndpoint) {
	if e.Addr.Is4() {
		ae.Uint16(addrAttrFamily, unix.AF_INET)
	} else {
		ae.Uint16(addrAttrFamily, unix.AF_INET6)
	}
	if e.ID != 0 {
		ae.Uint8(addrAttrID, e.ID)
	}
	if e.Addr.Is4() {
		a := e.Addr.As4()
		ae.Bytes(addrAttrAddr4, a[:])
	} else {
		a := e.Addr.As16()
		ae.Bytes(addrAttrAddr6, a[:])
	}
	if e.Port != 0 {
		ae.Uint16(addrAttrPort, e.Port)
	}
	ae.Uint32(addrAttrFlags, uint32(e.Flags))
	if e.IfIndex != 0 {
		ae.Int32(addrAttrIfIdx, e.IfIndex)
	}
}

// decodeEndpoint decodes the body of a GET_ADDR answer: the nested address
// attribute. Unknown attributes are skipped; a missing or malformed
// family, address or id is an error.
func decodeEndpoint(b []byte) (kernelEndpoint, error) {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return kernelEndpoint{}, fmt.Errorf("decode mptcp endpoint: %w", err)
	}
	var e kernelEndpoint
	found := false
	for ad.Next() {
		if ad.Type() != attrAddr {
			continue
		}
		if found {
			return kernelEndpoint{}, errors.New("decode mptcp endpoint: two addresses in one answer")
		}
		found = true
		ad.Nested(func(nad *netlink.AttributeDecoder) error {
			e, err = decodeAddr(nad)
			return err
		})
	}
	if err := ad.Err(); err != nil {
		return kernelEndpoint{}, fmt.Errorf("decode mptcp endpoint: %w", err)
	}
	if !found {
		return kernelEndpoint{}, errors.New("decode mptcp endpoint: no address attribute")
	}
	return e, nil
}

// decodeAddr decodes the attributes of a nested address.
func decodeAddr(ad *netlink.AttributeDecoder) (kernelEndpoint, error) {
	var e kernelEndpoint
	var family uint16
	var a4, a6 []byte
	hasID := false
	for ad.Next() {
		switch ad.Type() {
		case addrAttrFamily:
			family = ad.Uint16()
		case addrAttrID:
			e.ID, hasID = ad.Uint8(), true
		case addrAttrAddr4:
			a4 = ad.Bytes()
		case addrAttrAddr6:
			a6 = ad.Bytes()
		case addrAttrPort:
			e.Port = ad.Uint16()
		case addrAttrFlags:
			e.Flags = Flags(ad.Uint32())
		case addrAttrIfIdx:
			e.IfIndex = ad.Int32()
		}
	}
	if err := ad.Err(); err != nil {
		return kernelEndpoint{}, err
	}
	switch family {
	case unix.AF_INET:
		if len(a4) != 4 {
			return kernelEndpoint{}, fmt.Errorf("IPv4 endpoint with a %d-byte address", len(a4))
		}
		e.Addr = netip.AddrFrom4([4]byte(a4))
	case unix.AF_INET6:
		if len(a6) != 16 {
			return kernelEndpoint{}, fmt.Errorf("IPv6 endpoint with a %d-byte address", len(a6))
		}
		e.Addr = netip.AddrFrom16([16]byte(a6))
	default:
		return kernelEndpoint{}, fmt.Errorf("endpoint of unknown address family %d", family)
	}
	if !hasID {
		return kernelEndpoint{}, fmt.Errorf("endpoint %s without an id", e.Addr)
	}
	return e, nil
}

// decodeLimits decodes the body of a GET_LIMITS answer. Both limits must
// be there.
func decodeLimits(b []byte) (Limits, error) {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return Limits{}, err
	}
	var l Limits
	var sub, acc bool
	for ad.Next() {
		switch ad.Type() {
		case attrSubflows:
			l.Subflows, sub = ad.Uint32(), true
		case attrRcvAddAddrs:
			l.AddAddrAccepted, acc = ad.Uint32(), true
		}
	}
	if err := ad.Err(); err != nil {
		return Limits{}, err
	}
	if !sub || !acc {
		return Limits{}, errors.New("answer without both limits")
	}
	return l, nil
}
