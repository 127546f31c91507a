package nftables

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"

	gnft "github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/braid-router/braid/foreignfw"
	"github.com/braid-router/braid/reconcile/plan"
)

// braid reads the other programs' tables only to warn when they drop
// what braid lets through (package foreignfw): never into a plan, never
// to change them. They are read as braid's own table is, over netlink,
// with braid's own rule dump (google/nftables drops expressions it does
// not know), decoding each expression with its table's family (an xt
// match's data depends on it), and checked against the ruleset's
// generation so that a transaction in the middle of the read cannot show
// a ruleset that never was.

// ReadForeign reads every table in the namespace but braid's: its chains,
// rules, and sets with their elements.
func (d *Driver) ReadForeign() (*foreignfw.Ruleset, error) {
	if err := d.failed(); err != nil {
		return nil, err
	}
	for range readAttempts {
		before, err := d.dump.generation()
		if err != nil {
			return nil, err
		}
		rs, rerr := d.readForeignOnce()
		after, err := d.dump.generation()
		if err != nil {
			return nil, err
		}
		if after == before {
			if rerr != nil {
				return nil, fmt.Errorf("read the other tables: %w", rerr)
			}
			return rs, nil
		}
	}
	return nil, fmt.Errorf("read the other tables: the ruleset changed during each of %d reads", readAttempts)
}

func (d *Driver) readForeignOnce() (*foreignfw.Ruleset, error) {
	tables, err := d.conn.ListTables()
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	rs := &foreignfw.Ruleset{}
	index := map[string]int{}
	key := func(fam byte, name string) string { return strconv.Itoa(int(fam)) + " " + name }
	for _, t := range tables {
		if t.Family == gnft.TableFamilyINet && t.Name == TableName {
			continue
		}
		index[key(byte(t.Family), t.Name)] = len(rs.Tables)
		rs.Tables = append(rs.Tables, foreignfw.Table{Family: foreignfw.Family(t.Family), Name: t.Name,
			Dormant: tableFlags(t)&unix.NFT_TABLE_F_DORMANT != 0})
	}
	if len(rs.Tables) == 0 {
		return rs, nil
	}
	chains, err := d.conn.ListChains()
	if err != nil {
		return nil, fmt.Errorf("list chains: %w", err)
	}
	for _, c := range chains {
		if c.Table == nil {
			continue
		}
		i, ok := index[key(byte(c.Table.Family), c.Table.Name)]
		if !ok {
			continue
		}
		rs.Tables[i].Chains = append(rs.Tables[i].Chains, foreignChain(c))
	}
	for i := range rs.Tables {
		t := &rs.Tables[i]
		sets, err := d.conn.GetSets(&gnft.Table{Name: t.Name, Family: gnft.TableFamily(t.Family)})
		if err != nil {
			return nil, fmt.Errorf("list the sets of table %s: %w", t.Label(), err)
		}
		for _, s := range sets {
			elems, err := d.conn.GetSetElements(s)
			if err != nil {
				return nil, fmt.Errorf("list the elements of set %s in table %s: %w", s.Name, t.Label(), err)
			}
			t.Sets = append(t.Sets, foreignSet(s, elems))
		}
	}
	rules, err := d.dump.foreignRules()
	if err != nil {
		return nil, err
	}
	for _, r := range rules {
		i, ok := index[key(r.family, r.table)]
		if !ok {
			continue
		}
		t := &rs.Tables[i]
		for j := range t.Chains {
			if t.Chains[j].Name == r.chain {
				t.Chains[j].Rules = append(t.Chains[j].Rules, r.rule)
				break
			}
		}
	}
	return rs, nil
}

// foreignHooks names the hooks of the ip, ip6 and inet families.
var foreignHooks = map[gnft.ChainHook]string{
	unix.NF_INET_PRE_ROUTING:  foreignfw.HookPrerouting,
	unix.NF_INET_LOCAL_IN:     foreignfw.HookInput,
	unix.NF_INET_FORWARD:      foreignfw.HookForward,
	unix.NF_INET_LOCAL_OUT:    foreignfw.HookOutput,
	unix.NF_INET_POST_ROUTING: foreignfw.HookPostrouting,
	5:                         "ingress", // NF_INET_INGRESS
}

func foreignChain(c *gnft.Chain) foreignfw.Chain {
	out := foreignfw.Chain{Name: c.Name, Type: string(c.Type)}
	if c.Hooknum == nil {
		return out
	}
	fam := c.Table.Family
	switch name, ok := foreignHooks[*c.Hooknum]; {
	case ok && (fam == gnft.TableFamilyINet || fam == gnft.TableFamilyIPv4 || fam == gnft.TableFamilyIPv6):
		out.Hook = name
	default:
		out.Hook = "hook" + strconv.Itoa(int(*c.Hooknum))
		if fam == gnft.TableFamilyNetdev && *c.Hooknum == 0 {
			out.Hook = "ingress"
		}
	}
	if c.Priority != nil {
		out.Priority = int(*c.Priority)
	}
	out.Policy = "accept"
	if c.Policy != nil && *c.Policy == gnft.ChainPolicyDrop {
		out.Policy = "drop"
	}
	return out
}

// foreignSet turns a set and its elements into the analysis' form: an
// interval set's start and end elements become ranges.
func foreignSet(s *gnft.Set, elems []gnft.SetElement) foreignfw.Set {
	out := foreignfw.Set{Name: s.Name, ID: s.ID, KeyLen: int(s.KeyType.Bytes), Map: s.IsMap,
		VerdictMap: s.IsMap && s.DataType.Name == gnft.TypeVerdict.Name}
	out.Elements = elementRanges(s.Interval, elems)
	if s.IsMap && s.KeyType.Name == gnft.TypeVerdict.Name {
		// google/nftables v0.3.0 reads a verdict map's data type into its
		// key type, losing the key's length: the elements' keys tell it.
		out.VerdictMap, out.KeyLen = true, 0
		if len(out.Elements) > 0 {
			out.KeyLen = len(out.Elements[0].Key)
		}
	}
	return out
}

// elementRanges pairs the elements the kernel lists for a set: a single
// key each, a range with its end (concatenations of ranges), or, in an
// interval set, a start that runs to the next end element (exclusive) or
// else to the top.
func elementRanges(interval bool, elems []gnft.SetElement) []foreignfw.Element {
	var out []foreignfw.Element
	conv := func(e gnft.SetElement) foreignfw.Element {
		el := foreignfw.Element{Key: e.Key, KeyEnd: e.KeyEnd, Verdict: e.VerdictData, Data: e.Val}
		if el.Verdict == nil && e.Val != nil {
			// google/nftables v0.3.0 leaves a verdict map's data raw.
			if v, ok := verdictData(e.Val); ok {
				el.Verdict, el.Data = v, nil
			}
		}
		return el
	}
	if !interval || slices.ContainsFunc(elems, func(e gnft.SetElement) bool { return e.KeyEnd != nil }) {
		for _, e := range elems {
			if !e.IntervalEnd {
				out = append(out, conv(e))
			}
		}
		return out
	}
	// By key; at one key an end (closing the range before) comes before a
	// start (opening the next), as in rangesFromElements.
	sorted := slices.Clone(elems)
	slices.SortStableFunc(sorted, func(a, b gnft.SetElement) int {
		if c := bytes.Compare(a.Key, b.Key); c != 0 {
			return c
		}
		switch {
		case a.IntervalEnd == b.IntervalEnd:
			return 0
		case a.IntervalEnd:
			return -1
		}
		return 1
	})
	var open *gnft.SetElement
	closeAt := func(next []byte) {
		el := conv(*open)
		el.KeyEnd = bytes.Repeat([]byte{0xff}, len(open.Key))
		if next != nil {
			if last, ok := decBytes(next); ok {
				el.KeyEnd = last
			}
		}
		if bytes.Compare(el.KeyEnd, el.Key) >= 0 {
			out = append(out, el)
		}
		open = nil
	}
	for i := range sorted {
		e := &sorted[i]
		switch {
		case !e.IntervalEnd && open != nil:
			closeAt(e.Key)
			open = e
		case !e.IntervalEnd:
			open = e
		case open != nil:
			closeAt(e.Key)
		}
	}
	if open != nil {
		closeAt(nil)
	}
	return out
}

// verdictData decodes the content of an element's NFTA_DATA_VERDICT: its
// code and, for a jump or goto, its chain; false when b is not one.
func verdictData(b []byte) (*expr.Verdict, bool) {
	var v expr.Verdict
	code := false
	err := eachAttr(b, func(typ uint16, val []byte) error {
		switch typ {
		case unix.NFTA_VERDICT_CODE:
			if len(val) != 4 {
				return errors.New("verdict code of the wrong size")
			}
			v.Kind, code = expr.VerdictKind(int32(binary.BigEndian.Uint32(val))), true
		case unix.NFTA_VERDICT_CHAIN:
			v.Chain = string(bytes.TrimRight(val, "\x00"))
		default:
			return errors.New("not a verdict")
		}
		return nil
	})
	if err != nil || !code {
		return nil, false
	}
	return &v, true
}

func decBytes(b []byte) ([]byte, bool) {
	c := bytes.Clone(b)
	for i := len(c) - 1; i >= 0; i-- {
		c[i]--
		if c[i] != 0xff {
			return c, true
		}
	}
	return nil, false
}

// foreignRule is one rule of the rule dump, with where it belongs.
type foreignRule struct {
	family byte
	table  string
	chain  string
	rule   foreignfw.Rule
}

// foreignRules dumps the rules of every table (NFT_MSG_GETRULE for the
// unspecified family, without a table), in the kernel's order.
func (c *dumpConn) foreignRules() ([]foreignRule, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []foreignRule
	var err error
	for range dumpAttempts {
		out = nil
		err = c.request(c.buf, unix.NFT_MSG_GETRULE, unix.NLM_F_DUMP, []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, 0},
			func(typ uint16, body []byte) (bool, error) {
				if typ != unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_NEWRULE {
					return false, nil
				}
				r, err := parseForeignRule(body)
				if err != nil {
					return false, err
				}
				out = append(out, r)
				return false, nil
			})
		if !errors.Is(err, errDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("dump the rules of every table: %w", err)
	}
	return out, nil
}

// parseForeignRule decodes the body of an NFT_MSG_NEWRULE message (after
// the netlink header): the family of its nfgenmsg, its table, chain and
// handle, and its expressions, each decoded with the table's family.
func parseForeignRule(b []byte) (foreignRule, error) {
	if len(b) < 4 {
		return foreignRule{}, errors.New("short rule message")
	}
	out := foreignRule{family: b[0]}
	ad, err := netlink.NewAttributeDecoder(b[4:])
	if err != nil {
		return foreignRule{}, err
	}
	ad.ByteOrder = binary.BigEndian
	var exprs []expr.Any
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_RULE_TABLE:
			out.table = ad.String()
		case unix.NFTA_RULE_CHAIN:
			out.chain = ad.String()
		case unix.NFTA_RULE_HANDLE:
			out.rule.Handle = ad.Uint64()
		case unix.NFTA_RULE_EXPRESSIONS:
			ad.Nested(func(list *netlink.AttributeDecoder) error {
				for list.Next() {
					if list.Type() != unix.NFTA_LIST_ELEM {
						continue
					}
					list.Nested(func(e *netlink.AttributeDecoder) error {
						x, err := parseForeignExpr(e, out.family)
						if err == nil {
							exprs = append(exprs, x)
						}
						return err
					})
				}
				return list.Err()
			})
		}
	}
	if err := ad.Err(); err != nil {
		return foreignRule{}, fmt.Errorf("rule message: %w", err)
	}
	out.rule.Exprs = exprs
	out.rule.Text = render(exprs)
	return out, nil
}

// parseForeignExpr decodes one expression with the library's type of its
// name, for the table's family; what braid cannot decode is kept as a
// foreignfw.Opaque, which the analysis never takes for a pass.
func parseForeignExpr(ad *netlink.AttributeDecoder, family byte) (expr.Any, error) {
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
	if name == "tproxy" {
		if t, ok := parseTProxy(name, data).(*expr.TProxy); ok {
			return t, nil
		}
		return &foreignfw.Opaque{Name: name, Data: data}, nil
	}
	e := newExpr(name)
	if e == nil {
		return &foreignfw.Opaque{Name: name, Data: data}, nil
	}
	if data == nil {
		return e, nil
	}
	if err := expr.Unmarshal(family, data, e); err != nil {
		return &foreignfw.Opaque{Name: name, Data: data}, nil
	}
	if imm, ok := e.(*expr.Immediate); ok && imm.Register == unix.NFT_REG_VERDICT && len(imm.Data) == 0 {
		v := &expr.Verdict{}
		if err := expr.Unmarshal(family, data, v); err != nil {
			return &foreignfw.Opaque{Name: name, Data: data}, nil
		}
		return v, nil
	}
	return e, nil
}

// Model is braid's own desired table in the analysis' form: its chains
// with their rules' expressions, and its sets with their ranges. The
// analysis' tests run braid's intents through it, which must let every one
// of them through.
func Model(desired []plan.Resource) foreignfw.Table {
	t := foreignfw.Table{Family: foreignfw.FamilyINet, Name: TableName}
	for _, r := range desired {
		r = plan.Unbound(r)
		switch r := r.(type) {
		case Chain:
			t.Chains = append(t.Chains, foreignfw.Chain{Name: r.Name, Hook: r.Hook, Type: r.Type, Priority: r.Priority, Policy: r.Policy})
		case Set:
			s := foreignfw.Set{Name: r.Name, KeyLen: r.keyLen()}
			for _, rg := range r.Elements {
				el := foreignfw.Element{Key: rg.First.AsSlice()}
				if last := rg.End.Prev(); rg.End.IsValid() && last != rg.First {
					el.KeyEnd = last.AsSlice()
				}
				if !rg.End.IsValid() {
					el.KeyEnd = bytes.Repeat([]byte{0xff}, len(el.Key))
				}
				s.Elements = append(s.Elements, el)
			}
			t.Sets = append(t.Sets, s)
		}
	}
	for _, r := range desired {
		if rule, ok := plan.Unbound(r).(Rule); ok {
			for i := range t.Chains {
				if t.Chains[i].Name == rule.Chain {
					t.Chains[i].Rules = append(t.Chains[i].Rules, foreignfw.Rule{Text: rule.text, Exprs: rule.exprs})
				}
			}
		}
	}
	return t
}
