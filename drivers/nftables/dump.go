package nftables

import (
	"encoding/binary"
	"errors"
	"fmt"

	gnft "github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// braid reads rules with a dump of its own (NFT_MSG_GETRULE on the
// transaction socket) rather than google/nftables' GetRules: v0.3.0 of the
// library drops, without a trace, every expression whose name it does not
// know, tproxy among them. A rule read that way would render without its
// tproxy statement, so braid's steering rules would never compare equal to
// their desired text (a change every pass), and a rule someone edited would
// hide what it does. Here every expression the library can decode is
// decoded with its types, tproxy included; any other is kept as an
// undecoded expression, which render writes out in full and which braid
// refuses to write back (see decodable).

// errDumpInterrupted says the rules changed during a dump: read again.
var errDumpInterrupted = errors.New("the ruleset changed during the dump")

// dumpAttempts bounds the retries of an interrupted dump.
const dumpAttempts = 10

// rules returns the rules of one chain of braid's table, in the kernel's
// order.
func (c *txConn) rules(chain string) ([]*gnft.Rule, error) {
	for range dumpAttempts {
		rules, err := c.dumpRules(chain)
		if errors.Is(err, errDumpInterrupted) {
			continue
		}
		return rules, err
	}
	return nil, fmt.Errorf("dump the rules of chain %s: %w %d times", chain, errDumpInterrupted, dumpAttempts)
}

func (c *txConn) dumpRules(chain string) ([]*gnft.Rule, error) {
	attrs, err := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_RULE_TABLE, Data: []byte(TableName + "\x00")},
		{Type: unix.NFTA_RULE_CHAIN, Data: []byte(chain + "\x00")},
	})
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*gnft.Rule
	// struct nfgenmsg: the table's family, version 0, resource id 0.
	err = c.request(make([]byte, recvBufLen), unix.NFT_MSG_GETRULE, unix.NLM_F_DUMP, append([]byte{unix.NFPROTO_INET, unix.NFNETLINK_V0, 0, 0}, attrs...),
		func(typ uint16, body []byte) (bool, error) {
			if typ != unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_NEWRULE {
				return false, nil
			}
			r, err := parseRule(body)
			if err != nil {
				return false, err
			}
			out = append(out, r)
			return false, nil
		})
	if errors.Is(err, errDumpInterrupted) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("dump the rules of chain %s: %w", chain, err)
	}
	return out, nil
}

// parseRule decodes the body of an NFT_MSG_NEWRULE message: its handle,
// user data and expressions.
func parseRule(b []byte) (*gnft.Rule, error) {
	if len(b) < 4 {
		return nil, errors.New("short rule message")
	}
	ad, err := netlink.NewAttributeDecoder(b[4:])
	if err != nil {
		return nil, err
	}
	ad.ByteOrder = binary.BigEndian
	r := &gnft.Rule{}
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_RULE_HANDLE:
			r.Handle = ad.Uint64()
		case unix.NFTA_RULE_USERDATA:
			r.UserData = ad.Bytes()
		case unix.NFTA_RULE_EXPRESSIONS:
			ad.Nested(func(list *netlink.AttributeDecoder) error {
				for list.Next() {
					if list.Type() != unix.NFTA_LIST_ELEM {
						continue
					}
					list.Nested(func(e *netlink.AttributeDecoder) error {
						x, err := parseExpr(e)
						if err == nil {
							r.Exprs = append(r.Exprs, x)
						}
						return err
					})
				}
				return list.Err()
			})
		}
	}
	if err := ad.Err(); err != nil {
		return nil, fmt.Errorf("rule message: %w", err)
	}
	return r, nil
}

// parseExpr decodes one expression: its name, then its data with the
// library's type of that name. An expression braid has no type for, or
// whose data its type cannot read, is kept undecoded.
func parseExpr(ad *netlink.AttributeDecoder) (expr.Any, error) {
	var name string
	var data []byte
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_EXPR_NAME:
			name = ad.String()
		case unix.NFTA_EXPR_DATA:
			data = ad.Bytes()
		}
	}
	if err := ad.Err(); err != nil {
		return nil, err
	}
	switch name {
	case "tproxy":
		return parseTProxy(name, data), nil
	case "ct":
		return parseCt(name, data), nil
	}
	e := newExpr(name)
	if e == nil {
		return &undecoded{name: name, data: data}, nil
	}
	if data == nil {
		return e, nil // notrack has no data
	}
	if err := unmarshal(data, e); err != nil {
		// Written out in full rather than failing the whole read.
		return &undecoded{name: name, data: data}, nil
	}
	// A verdict is an immediate into the verdict register, without a
	// value (as google/nftables decodes it).
	if imm, ok := e.(*expr.Immediate); ok && imm.Register == unix.NFT_REG_VERDICT && len(imm.Data) == 0 {
		if v, ok := parseVerdict(data); ok {
			return v, nil
		}
		return &undecoded{name: name, data: data}, nil
	}
	return e, nil
}

// unmarshal decodes data into e with google/nftables. Its v0.3.0 decoders
// index attributes at fixed offsets without checking their lengths (a
// verdict's four-octet code read at [4:8] of whatever arrived), so a
// panic there is an expression braid cannot decode, not a crash.
func unmarshal(data []byte, e expr.Any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("google/nftables: %v", r)
		}
	}()
	return expr.Unmarshal(unix.NFPROTO_INET, data, e)
}

// parseVerdict decodes an immediate's verdict: NFTA_IMMEDIATE_DATA
// holding NFTA_DATA_VERDICT, itself holding the code and, for a jump or
// a goto, the chain. False when data is not one.
func parseVerdict(data []byte) (*expr.Verdict, bool) {
	ad, err := netlink.NewAttributeDecoder(data)
	if err != nil {
		return nil, false
	}
	ad.ByteOrder = binary.BigEndian
	var v *expr.Verdict
	for ad.Next() {
		if ad.Type() != unix.NFTA_IMMEDIATE_DATA {
			continue
		}
		ad.Nested(func(nd *netlink.AttributeDecoder) error {
			for nd.Next() {
				if nd.Type() != unix.NFTA_DATA_VERDICT {
					continue
				}
				nd.Nested(func(vd *netlink.AttributeDecoder) error {
					var code bool
					w := &expr.Verdict{}
					for vd.Next() {
						switch vd.Type() {
						case unix.NFTA_VERDICT_CODE:
							w.Kind = expr.VerdictKind(int32(vd.Uint32()))
							code = true
						case unix.NFTA_VERDICT_CHAIN:
							w.Chain = vd.String()
						}
					}
					if code && vd.Err() == nil {
						v = w
					}
					return nil
				})
			}
			return nil
		})
	}
	if ad.Err() != nil || v == nil {
		return nil, false
	}
	return v, true
}

// parseTProxy decodes a tproxy expression. google/nftables v0.3.0 has the
// type but reads its family as one byte where the kernel sends 32 bits.
func parseTProxy(name string, data []byte) expr.Any {
	ad, err := netlink.NewAttributeDecoder(data)
	if err != nil {
		return &undecoded{name: name, data: data}
	}
	ad.ByteOrder = binary.BigEndian
	e := &expr.TProxy{TableFamily: unix.NFPROTO_INET}
	family := uint32(0)
	for ad.Next() {
		switch ad.Type() {
		case expr.NFTA_TPROXY_FAMILY:
			family = ad.Uint32()
		case expr.NFTA_TPROXY_REG_ADDR:
			e.RegAddr = ad.Uint32()
		case expr.NFTA_TPROXY_REG_PORT:
			e.RegPort = ad.Uint32()
		}
	}
	if ad.Err() != nil || family > 0xff {
		return &undecoded{name: name, data: data}
	}
	e.Family = byte(family)
	return e
}

// parseCt decodes a ct expression. google/nftables v0.3.0 reads neither
// its source register (a ct mark set would read back as a load into
// register 0) nor its direction, which the kernel sends as one byte.
func parseCt(name string, data []byte) expr.Any {
	ad, err := netlink.NewAttributeDecoder(data)
	if err != nil {
		return &undecoded{name: name, data: data}
	}
	ad.ByteOrder = binary.BigEndian
	e := &expr.Ct{}
	var dreg, sreg bool
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_CT_KEY:
			e.Key = expr.CtKey(ad.Uint32())
		case unix.NFTA_CT_DREG:
			e.Register, dreg = ad.Uint32(), true
		case unix.NFTA_CT_SREG:
			e.Register, sreg, e.SourceRegister = ad.Uint32(), true, true
		case unix.NFTA_CT_DIRECTION:
			e.Direction = uint32(ad.Uint8())
		default:
			// An attribute braid does not know (a zone, say).
			return &undecoded{name: name, data: data}
		}
	}
	if ad.Err() != nil || dreg == sreg {
		return &undecoded{name: name, data: data}
	}
	return e
}

// newExpr returns an empty expression of the type google/nftables v0.3.0
// decodes for name (its exprFromName), and those it has types for but
// does not decode (socket, rt, dup; tproxy has parseTProxy); nil for any
// other name.
func newExpr(name string) expr.Any {
	switch name {
	case "ct":
		return &expr.Ct{}
	case "range":
		return &expr.Range{}
	case "meta":
		return &expr.Meta{}
	case "cmp":
		return &expr.Cmp{}
	case "counter":
		return &expr.Counter{}
	case "objref":
		return &expr.Objref{}
	case "payload":
		return &expr.Payload{}
	case "lookup":
		return &expr.Lookup{}
	case "immediate":
		return &expr.Immediate{}
	case "bitwise":
		return &expr.Bitwise{}
	case "redir":
		return &expr.Redir{}
	case "nat":
		return &expr.NAT{}
	case "limit":
		return &expr.Limit{}
	case "quota":
		return &expr.Quota{}
	case "dynset":
		return &expr.Dynset{}
	case "log":
		return &expr.Log{}
	case "exthdr":
		return &expr.Exthdr{}
	case "match":
		return &expr.Match{}
	case "target":
		return &expr.Target{}
	case "connlimit":
		return &expr.Connlimit{}
	case "queue":
		return &expr.Queue{}
	case "flow_offload":
		return &expr.FlowOffload{}
	case "reject":
		return &expr.Reject{}
	case "masq":
		return &expr.Masq{}
	case "hash":
		return &expr.Hash{}
	case "cthelper":
		return &expr.CtHelper{}
	case "synproxy":
		return &expr.SynProxy{}
	case "ctexpect":
		return &expr.CtExpect{}
	case "secmark":
		return &expr.SecMark{}
	case "cttimeout":
		return &expr.CtTimeout{}
	case "fib":
		return &expr.Fib{}
	case "numgen":
		return &expr.Numgen{}
	case "notrack":
		return &expr.Notrack{}
	case "socket":
		return &expr.Socket{}
	case "rt":
		return &expr.Rt{}
	case "dup":
		return &expr.Dup{}
	}
	return nil
}

// undecoded is an expression of a rule read from the kernel that braid
// has no type for: its name and raw data, which render writes out. It
// satisfies expr.Any through the embedded Notrack only so that it can sit
// in a rule's expressions; it is never written to the kernel (see
// decodable).
type undecoded struct {
	expr.Notrack
	name string
	data []byte
}

// decodable reports an error if the rule holds an expression braid could
// not decode, which it cannot write back (a rollback that would recreate
// a rule read from the kernel).
func (r Rule) decodable() error {
	for _, e := range r.exprs {
		if u, ok := e.(*undecoded); ok {
			return fmt.Errorf("%s holds a %q expression braid cannot decode, so it cannot write it back", r.Address(), u.name)
		}
	}
	return nil
}
