package nftables

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	gnft "github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/braid-router/braid/reconcile/plan"
)

// tx assembles one transaction: the messages google/nftables builds for
// each change, and which change each message belongs to.
type tx struct {
	b        *gnft.Conn
	captured []netlink.Message
	msgs     []netlink.Message
	owner    []int
	setID    uint32
}

// errCaptured stops google/nftables' Flush once it has handed over the
// messages: tx sends them itself (see txConn).
var errCaptured = errors.New("captured")

func newTx() (*tx, error) {
	t := &tx{}
	// Lasting: one capturing connection for every Flush, not one each.
	b, err := gnft.New(gnft.AsLasting(), gnft.WithTestDial(func(req []netlink.Message) ([]netlink.Message, error) {
		t.captured = append(t.captured, req...)
		return nil, errCaptured
	}))
	if err != nil {
		return nil, err
	}
	t.b = b
	return t, nil
}

// emit records the messages fn builds as belonging to change ci.
func (t *tx) emit(ci int, fn func(c *gnft.Conn) error) error {
	if err := fn(t.b); err != nil {
		return err
	}
	t.captured = t.captured[:0]
	if err := t.b.Flush(); err != nil && !errors.Is(err, errCaptured) {
		return err
	}
	for _, m := range t.captured {
		switch m.Header.Type {
		case unix.NFNL_MSG_BATCH_BEGIN, unix.NFNL_MSG_BATCH_END:
			continue
		}
		t.msgs = append(t.msgs, m)
		t.owner = append(t.owner, ci)
	}
	return nil
}

// maxElements bounds the elements of one message: the kernel takes them
// in one attribute, whose length is 16 bits.
const maxElements = 1024

// addSet creates a set, then adds its elements in messages of at most
// maxElements.
func (t *tx) addSet(ci int, s Set) error {
	t.setID++
	gs := gset(s, t.setID)
	if err := t.emit(ci, func(c *gnft.Conn) error { return c.AddSet(gs, nil) }); err != nil {
		return err
	}
	return t.elements(ci, gs, s.Elements, true)
}

// elements adds (or deletes) ranges of a set, in messages of at most
// maxElements elements encoded by elementsMsg.
func (t *tx) elements(ci int, gs *gnft.Set, rs []Range, add bool) error {
	elems := setElements(rs)
	for len(elems) > 0 {
		n := min(len(elems), maxElements)
		t.msgs = append(t.msgs, elementsMsg(gs, elems[:n], add))
		t.owner = append(t.owner, ci)
		elems = elems[n:]
	}
	return nil
}

// elementsMsg encodes an NFT_MSG_NEWSETELEM (add) or NFT_MSG_DELSETELEM
// message of elements of gs, exactly as google/nftables' SetAddElements
// and SetDeleteElements do (TestElementsMsgAsTheLibrary compares them),
// for the elements braid writes: a key, and the interval-end flag. The
// library builds each element's attributes as a list of values and
// marshals them level by level, which was a third of building a
// transaction of 10,000 elements; this appends the bytes once.
func elementsMsg(gs *gnft.Set, elems []gnft.SetElement, add bool) netlink.Message {
	typ := unix.NFT_MSG_DELSETELEM
	if add {
		typ = unix.NFT_MSG_NEWSETELEM
	}
	size := 64 + len(gs.Name) + len(gs.Table.Name)
	for _, e := range elems {
		size += 28 + align4(len(e.Key))
	}
	b := make([]byte, 0, size)
	b = append(b, byte(gs.Table.Family), unix.NFNETLINK_V0, 0, 0)
	b = appendAttr(b, unix.NFTA_SET_ELEM_LIST_SET, append([]byte(gs.Name), 0))
	b = appendAttr(b, unix.NFTA_SET_ELEM_LIST_SET_ID, binary.BigEndian.AppendUint32(nil, gs.ID))
	b = appendAttr(b, unix.NFTA_SET_ELEM_LIST_TABLE, append([]byte(gs.Table.Name), 0))
	list := len(b)
	b = appendAttr(b, unix.NFTA_SET_ELEM_LIST_ELEMENTS|unix.NLA_F_NESTED, nil)
	for i, e := range elems {
		item := len(b)
		b = appendAttr(b, uint16(i+1)|unix.NLA_F_NESTED, nil)
		if e.IntervalEnd {
			// The library marks this one nested too; the kernel does not
			// mind.
			b = appendAttr(b, unix.NFTA_SET_ELEM_FLAGS|unix.NLA_F_NESTED, binary.BigEndian.AppendUint32(nil, unix.NFT_SET_ELEM_INTERVAL_END))
		}
		key := len(b)
		b = appendAttr(b, unix.NFTA_SET_ELEM_KEY|unix.NLA_F_NESTED, nil)
		b = appendAttr(b, unix.NFTA_DATA_VALUE, e.Key)
		endAttr(b, key)
		endAttr(b, item)
	}
	endAttr(b, list)
	return netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | typ),
			Flags: netlink.Request | netlink.Acknowledge | netlink.Create,
		},
		Data: b,
	}
}

// appendAttr appends a netlink attribute holding v, padded to 4 bytes.
func appendAttr(b []byte, typ uint16, v []byte) []byte {
	b = binary.NativeEndian.AppendUint16(b, uint16(unix.SizeofNlAttr+len(v)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, v...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// endAttr sets the length of the attribute appended at offset at to
// include everything appended after it: a nested attribute.
func endAttr(b []byte, at int) {
	binary.NativeEndian.PutUint16(b[at:], uint16(len(b)-at))
}

func gset(s Set, id uint32) *gnft.Set {
	kt := gnft.TypeIPAddr
	if s.v6() {
		kt = gnft.TypeIP6Addr
	}
	return &gnft.Set{Table: braidTable(), Name: s.Name, ID: id, Interval: s.Interval, HasTimeout: s.Timeout, KeyType: kt}
}

func gchain(c Chain) *gnft.Chain {
	out := &gnft.Chain{Name: c.Name, Table: braidTable()}
	if c.Hook == "" {
		return out
	}
	for num, name := range hookNames {
		if name == c.Hook {
			out.Hooknum = gnft.ChainHookRef(num)
		}
	}
	out.Priority = gnft.ChainPriorityRef(gnft.ChainPriority(c.Priority))
	out.Type = gnft.ChainType(c.Type)
	policy := gnft.ChainPolicyAccept
	if c.Policy == "drop" {
		policy = gnft.ChainPolicyDrop
	}
	out.Policy = &policy
	return out
}

func grule(r Rule) *gnft.Rule {
	return &gnft.Rule{
		Table:    braidTable(),
		Chain:    &gnft.Chain{Name: r.Chain, Table: braidTable()},
		Exprs:    r.exprs,
		UserData: encodeID(r.ID),
	}
}

// build turns a run of changes into one transaction against what is live
// now. The kernel processes a transaction in order, so it is built in
// phases: the table, chains and sets (with element differences); new and
// moved rules, each inserted before the next rule of its chain's desired
// order that stays in place; rules changed in place; then deletes of
// rules, sets and chains. A change already so (a delete of something
// gone) builds nothing.
func build(changes []plan.Change, l *live) (*tx, error) {
	t, err := newTx()
	if err != nil {
		return nil, err
	}
	// Deleting the table deletes everything in it: one message.
	for ci, c := range changes {
		if _, ok := c.Resource().(Table); !ok || c.Action != plan.Delete {
			continue
		}
		for _, o := range changes {
			if o.Action != plan.Delete {
				return nil, fmt.Errorf("%s %s in the pass that deletes the table", o.Action, o.Address())
			}
		}
		if l.exists {
			err := t.emit(ci, func(c *gnft.Conn) error { c.DelTable(braidTable()); return nil })
			return t, err
		}
		return t, nil
	}

	gone := map[uint64]bool{}
	flushed := map[string]bool{}
	deleteRule := func(ci int, r Rule) error {
		if r.handle == 0 || gone[r.handle] || flushed[r.Chain] {
			return nil
		}
		gone[r.handle] = true
		return t.emit(ci, func(c *gnft.Conn) error {
			return c.DelRule(&gnft.Rule{Table: braidTable(), Chain: &gnft.Chain{Name: r.Chain, Table: braidTable()}, Handle: r.handle})
		})
	}

	// Phase 1: table, chains, sets.
	for ci, c := range changes {
		if c.Action == plan.Delete {
			continue
		}
		var err error
		switch r := c.Resource().(type) {
		case Table:
			err = t.emit(ci, func(c *gnft.Conn) error {
				c.AddTable(&gnft.Table{Name: TableName, Family: gnft.TableFamilyINet})
				return nil
			})
		case Chain:
			lc, ok := l.chain(r.Name)
			switch {
			case ok && lc == r:
			case !ok || lc.sameBase(r):
				err = t.emit(ci, func(c *gnft.Conn) error { c.AddChain(gchain(r)); return nil })
			default:
				// A base chain cannot change hook, type or priority:
				// replace it, rules and all.
				flushed[r.Name] = true
				err = t.emit(ci, func(c *gnft.Conn) error {
					c.FlushChain(gchain(lc))
					c.DelChain(gchain(lc))
					c.AddChain(gchain(r))
					return nil
				})
			}
		case Set:
			ls, ok := l.set(r.Name)
			switch {
			case !ok:
				err = t.addSet(ci, r)
			case ls.sameKind(r) && r.Timeout:
				// Its elements are a session's: nothing to change.
			case ls.sameKind(r):
				add, del := elementDiff(ls.Elements, r.Elements)
				t.setID++
				gs := gset(r, t.setID)
				if err = t.elements(ci, gs, del, false); err == nil {
					err = t.elements(ci, gs, add, true)
				}
			default:
				// Another type or flags: replace the set, and the rules
				// that look it up (the plan creates them again).
				for _, rules := range l.rules {
					for _, lr := range rules {
						if err == nil && lr.references(r.Name) {
							err = deleteRule(ci, lr)
						}
					}
				}
				if err == nil {
					err = t.emit(ci, func(c *gnft.Conn) error { c.DelSet(&gnft.Set{Table: braidTable(), Name: r.Name}); return nil })
				}
				if err == nil {
					err = t.addSet(ci, r)
				}
			}
		}
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", c.Action, c.Address(), err)
		}
	}

	// Rules that leave their place in this transaction are no anchor for
	// an insert: deleted ones, moved ones, and those gone with a replaced
	// chain or set.
	type ruleKey struct{ chain, id string }
	liveRules := map[ruleKey]Rule{}
	for chain, rules := range l.rules {
		for _, r := range rules {
			liveRules[ruleKey{chain, r.ID}] = r
		}
	}
	unstable := map[ruleKey]bool{}
	for _, c := range changes {
		r, ok := c.Resource().(Rule)
		if !ok {
			continue
		}
		if c.Action == plan.Delete || moved(c) {
			unstable[ruleKey{r.Chain, r.ID}] = true
		}
	}
	current := func(r Rule) (Rule, bool) {
		lr, ok := liveRules[ruleKey{r.Chain, r.ID}]
		if !ok || gone[lr.handle] || flushed[r.Chain] {
			return Rule{}, false
		}
		return lr, true
	}
	// anchors[seq][i] is the handle of the first rule after position i of
	// seq that stays in place, or 0: computed once per sequence, from its
	// end.
	anchors := map[*sequence][]uint64{}
	anchor := func(r Rule) uint64 {
		if r.seq == nil || flushed[r.Chain] {
			return 0
		}
		at, ok := anchors[r.seq]
		if !ok {
			ids := r.seq.ids
			at = make([]uint64, len(ids))
			for j := len(ids) - 2; j >= 0; j-- {
				at[j] = at[j+1]
				k := ruleKey{r.Chain, ids[j+1]}
				if lr, ok := current(Rule{Chain: r.Chain, ID: ids[j+1]}); ok && !unstable[k] {
					at[j] = lr.handle
				}
			}
			anchors[r.seq] = at
		}
		if r.idx < 0 || r.idx >= len(at) {
			return 0
		}
		return at[r.idx]
	}

	// Phase 2: new and moved rules, in desired order.
	type replace struct {
		ci     int
		r      Rule
		handle uint64
	}
	var replaces []replace
	var moves []replace
	for ci, c := range changes {
		r, ok := c.Resource().(Rule)
		if !ok || c.Action == plan.Delete {
			continue
		}
		if err := r.decodable(); err != nil {
			return nil, fmt.Errorf("%s %s: %w", c.Action, c.Address(), err)
		}
		lr, exists := current(r)
		if exists && !moved(c) {
			replaces = append(replaces, replace{ci, r, lr.handle})
			continue
		}
		if exists {
			moves = append(moves, replace{ci, r, lr.handle})
		}
		gr := grule(r)
		if h := anchor(r); h != 0 {
			gr.Position = h
			err = t.emit(ci, func(c *gnft.Conn) error { c.InsertRule(gr); return nil })
		} else {
			err = t.emit(ci, func(c *gnft.Conn) error { c.AddRule(gr); return nil })
		}
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", c.Action, c.Address(), err)
		}
	}
	// Phase 3: rules changed in place.
	for _, rp := range replaces {
		gr := grule(rp.r)
		gr.Handle = rp.handle
		if err := t.emit(rp.ci, func(c *gnft.Conn) error { c.ReplaceRule(gr); return nil }); err != nil {
			return nil, fmt.Errorf("%s: %w", rp.r.Address(), err)
		}
	}
	// Phase 4: deleted rules, and the old places of moved ones.
	for _, mv := range moves {
		lr, _ := current(mv.r)
		if err := deleteRule(mv.ci, lr); err != nil {
			return nil, fmt.Errorf("%s: %w", mv.r.Address(), err)
		}
	}
	for ci, c := range changes {
		r, ok := c.Resource().(Rule)
		if !ok || c.Action != plan.Delete {
			continue
		}
		if lr, ok := current(r); ok {
			if err := deleteRule(ci, lr); err != nil {
				return nil, fmt.Errorf("%s %s: %w", c.Action, c.Address(), err)
			}
		}
	}
	// Phase 5: deleted sets and chains.
	for ci, c := range changes {
		if c.Action != plan.Delete {
			continue
		}
		var err error
		switch r := c.Resource().(type) {
		case Set:
			if _, ok := l.set(r.Name); ok {
				err = t.emit(ci, func(c *gnft.Conn) error { c.DelSet(&gnft.Set{Table: braidTable(), Name: r.Name}); return nil })
			}
		case Chain:
			if lc, ok := l.chain(r.Name); ok {
				err = t.emit(ci, func(c *gnft.Conn) error {
					c.FlushChain(gchain(lc))
					c.DelChain(gchain(lc))
					return nil
				})
			}
		}
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", c.Action, c.Address(), err)
		}
	}
	return t, nil
}

// moved reports whether a change moves a misplaced rule.
func moved(c plan.Change) bool {
	if c.Action != plan.Update {
		return false
	}
	b, ok := c.Before.(Rule)
	return ok && b.misplaced
}

// RefusedError is the kernel's refusal of a transaction: nothing in it was
// applied. It names the changes whose messages the kernel refused.
type RefusedError struct {
	// Changes are the refused changes, with the kernel's error for each.
	Changes []RefusedChange
	// Total is the number of changes in the transaction.
	Total int
}

// RefusedChange is one change the kernel refused, and why.
type RefusedChange struct {
	// Change is the refused change.
	Change plan.Change
	// Err is the kernel's error, with its explanation when it gave one.
	Err error
}

func (e *RefusedError) Error() string {
	var parts []string
	for _, r := range e.Changes {
		parts = append(parts, fmt.Sprintf("%s %s: %v", r.Change.Action, r.Change.Address(), r.Err))
	}
	what := fmt.Sprintf("%d changes, so none of them was", e.Total)
	if e.Total == 1 {
		what = "1 change, so it was not"
	}
	return fmt.Sprintf("the kernel refused the nftables transaction of %s applied: %s", what, strings.Join(parts, "; "))
}

// Unwrap returns the kernel's errors.
func (e *RefusedError) Unwrap() []error {
	out := make([]error, len(e.Changes))
	for i, r := range e.Changes {
		out[i] = r.Err
	}
	return out
}

// refusal maps the refused messages of a transaction to their changes.
func refusal(changes []plan.Change, t *tx, refused []msgError) *RefusedError {
	e := &RefusedError{Total: len(changes)}
	seen := map[int]bool{}
	for _, m := range refused {
		ci := t.owner[m.index]
		if seen[ci] {
			continue
		}
		seen[ci] = true
		e.Changes = append(e.Changes, RefusedChange{Change: changes[ci], Err: m.err()})
	}
	return e
}
