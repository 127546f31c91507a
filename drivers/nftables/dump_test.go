package nftables

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/braid-router/braid/internal/plantest"
	"github.com/braid-router/braid/reconcile/plan"
)

// A rule of braid's table edited by hand with an expression braid has no
// type for (ipsec: xfrm) reads with that expression written out, so that
// it differs from the desired rule and is replaced; braid never writes
// such a rule back (an undo that would recreate it is refused, and so
// nothing of the transaction is applied).
func TestUndecodedExpressionIsShownNeverWritten(t *testing.T) {
	r := newRig(t)
	want := sample(t)
	r.converge(want)
	handle := map[string]string{}
	for _, l := range r.nftRules() {
		handle[l.chain+":"+l.id] = l.handle
	}
	r.nft("replace", "rule", "inet", TableName, ChainInput, "handle", handle["input:lan"],
		"iifname", "lan0", "ipsec", "in", "reqid", "1", "accept", "comment", `"lan"`)
	changes := r.plan(want)
	plantest.WantActions(t, changes, "~nft.rule[inet braid input:lan]")
	before := changes[0].Before.(Rule)
	// What the xfrm expression loads is unknown: the comparison after it
	// is written out too.
	if !strings.HasPrefix(before.Text(), `iifname "lan0" [xfrm `) || !strings.HasSuffix(before.Text(), "] [Cmp{Op:0 Register:1 Data:[1 0 0 0]}] accept") {
		t.Errorf("the edited rule reads %q", before.Text())
	}
	// Recreating the rule as read (the undo of its delete) is refused,
	// with the change that was to go with it.
	undo := []plan.Change{
		{Action: plan.Create, After: before},
		changes[0],
	}
	n, err := r.d.ApplyBatch(context.Background(), undo)
	if n != 0 || err == nil || !strings.Contains(err.Error(), `holds a "xfrm" expression braid cannot decode`) {
		t.Fatalf("writing back an undecoded rule: %d applied, %v", n, err)
	}
	if got := r.plan(want); len(got) != 1 {
		t.Fatalf("the refused transaction changed something:%s", plantest.Describe(got))
	}
	r.converge(want)
	r.settled(want)
}

// FuzzParseRule feeds the decoder of braid's own rules anything: it must
// never panic. Its seed holds the ct expressions braid writes (a load and
// a set of the connection's mark), which read back as written.
func FuzzParseRule(f *testing.F) {
	want := []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeyMARK},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{1, 0, 0, 0}},
		&expr.Ct{Register: 1, Key: expr.CtKeyMARK},
		&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: 1},
		&expr.Immediate{Register: 1, Data: []byte{1, 0, 0, 0}},
		&expr.Ct{Register: 1, Key: expr.CtKeyMARK, SourceRegister: true},
	}
	var exprs []netlink.Attribute
	for _, e := range want {
		b, err := expr.Marshal(unix.NFPROTO_INET, e)
		if err != nil {
			f.Fatal(err)
		}
		exprs = append(exprs, netlink.Attribute{Type: unix.NFTA_LIST_ELEM | unix.NLA_F_NESTED, Data: b})
	}
	list, err := netlink.MarshalAttributes(exprs)
	if err != nil {
		f.Fatal(err)
	}
	attrs, err := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_RULE_TABLE, Data: []byte(TableName + "\x00")},
		{Type: unix.NFTA_RULE_CHAIN, Data: []byte(ChainMangle + "\x00")},
		{Type: unix.NFTA_RULE_HANDLE, Data: []byte{0, 0, 0, 0, 0, 0, 0, 7}},
		{Type: unix.NFTA_RULE_EXPRESSIONS | unix.NLA_F_NESTED, Data: list},
	})
	if err != nil {
		f.Fatal(err)
	}
	seed := append([]byte{unix.NFPROTO_INET, 0, 0, 0}, attrs...)
	r, err := parseRule(seed)
	if err != nil {
		f.Fatal(err)
	}
	if !reflect.DeepEqual(r.Exprs, want) {
		f.Fatalf("the seed reads as %s, want %s", dumpExprs(r.Exprs), dumpExprs(want))
	}
	f.Add(seed)
	f.Fuzz(func(t *testing.T, b []byte) {
		parseRule(b)
	})
}

// A verdict reads back as google/nftables writes it, code and chain; one
// whose code is not four octets is no verdict (google/nftables v0.3.0
// read it at [4:8] and panicked: FuzzParseRule).
func TestParseVerdict(t *testing.T) {
	for _, want := range []*expr.Verdict{
		{Kind: expr.VerdictAccept},
		{Kind: expr.VerdictDrop},
		{Kind: expr.VerdictReturn},
		{Kind: expr.VerdictJump, Chain: "dns_intercept"},
		{Kind: expr.VerdictGoto, Chain: "x"},
	} {
		b, err := expr.Marshal(unix.NFPROTO_INET, want)
		if err != nil {
			t.Fatal(err)
		}
		// The expression's name and data: the data is what is parsed.
		attrs, err := netlink.UnmarshalAttributes(b)
		if err != nil {
			t.Fatal(err)
		}
		var data []byte
		for _, a := range attrs {
			if a.Type&^unix.NLA_F_NESTED == unix.NFTA_EXPR_DATA {
				data = a.Data
			}
		}
		got, ok := parseVerdict(data)
		if !ok || got.Kind != want.Kind || got.Chain != want.Chain {
			t.Errorf("%+v read back as %+v, %v", want, got, ok)
		}
	}
	short, err := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_IMMEDIATE_DREG, Data: []byte{0, 0, 0, 0}},
		{Type: unix.NLA_F_NESTED | unix.NFTA_IMMEDIATE_DATA, Data: mustAttrs(t, netlink.Attribute{
			Type: unix.NLA_F_NESTED | unix.NFTA_DATA_VERDICT, Data: mustAttrs(t, netlink.Attribute{Type: unix.NFTA_VERDICT_CODE, Data: []byte{0, 1}}),
		})},
	})
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := parseVerdict(short); ok {
		t.Errorf("a two-octet verdict code read as %+v", v)
	}
}

func mustAttrs(t *testing.T, attrs ...netlink.Attribute) []byte {
	t.Helper()
	b, err := netlink.MarshalAttributes(attrs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
