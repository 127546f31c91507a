package foreignfw

import (
	"fmt"
	"slices"
	"strings"

	"github.com/google/nftables/expr"
)

// Outcome is how a packet's walk through the foreign chains ends.
type Outcome int

// Outcomes.
const (
	// Accepted: every foreign base chain on its path let it through.
	Accepted Outcome = iota
	// Dropped: a chain dropped or rejected it.
	Dropped
	// Unknown: a statement braid does not model decided (a queue to a
	// program, a redirection), so braid cannot say it passes.
	Unknown
)

// Leaf is one way a packet's walk can end, with what decided it and what
// the analysis had to assume on the way.
type Leaf struct {
	Outcome Outcome
	// Table, Base and Hook locate the base chain whose evaluation decided
	// (nil for Accepted); Chain and Rule the rule that did (nil Rule: the
	// base chain's policy; Chain is then the base chain).
	Table *Table
	Base  *Chain
	Hook  string
	Chain *Chain
	Rule  *Rule
	// Reject is set when the rule rejects rather than drops.
	Reject bool
	// Why says, for Unknown, what braid does not model.
	Why string
	// Assumed lists the rules the walk assumed matched or did not, where
	// it could not tell (a match braid does not model, or one that holds
	// for some of the flow's packets only); Because says why it could not.
	Assumed []string
	Because []string
}

// Certain reports whether the leaf holds whatever braid does not model:
// the walk assumed nothing.
func (l *Leaf) Certain() bool { return len(l.Assumed) == 0 }

// maxBranches bounds the walks the assumptions of one packet may fork
// into; past it the outcome is Unknown.
const maxBranches = 4096

// maxJumps is the kernel's bound on nested jumps (NFT_JUMP_STACK_SIZE).
const maxJumps = 16

// Walk runs one packet through every base chain of rs on each hook of
// its path, in priority order, as the kernel would: a drop anywhere ends
// it, an accept ends only the chain's say. It returns every way the walk
// can end; a packet passes when they are all Accepted. nat chains see only
// a connection's first packet; dormant tables and the families that do not
// see IP packets at these hooks (arp, bridge, netdev) are left out.
func Walk(rs *Ruleset, p *Packet) []Leaf {
	e := &evaluator{budget: maxBranches}
	live := []state{{mark: Point(hostU32(0))}}
	var out []Leaf
	for _, hook := range p.Path.hooks() {
		for _, bc := range baseChains(rs, p, hook) {
			var next []state
			for _, st := range live {
				st.regs = nil
				for _, r := range e.walk(&walkCtx{p: p, t: bc.t, base: bc.c, hook: hook}, st) {
					if r.leaf.Outcome == Accepted {
						next = append(next, r.st)
					} else {
						out = append(out, r.leaf)
					}
				}
			}
			live = next
		}
	}
	for _, st := range live {
		out = append(out, Leaf{Outcome: Accepted, Assumed: st.assumed, Because: st.because})
	}
	return out
}

type tableChain struct {
	t *Table
	c *Chain
}

// baseChains lists the base chains that see p on hook, by priority.
func baseChains(rs *Ruleset, p *Packet, hook string) []tableChain {
	var out []tableChain
	for i := range rs.Tables {
		t := &rs.Tables[i]
		if t.Dormant || (t.Family != FamilyINet && t.Family != p.Family()) {
			continue
		}
		for j := range t.Chains {
			c := &t.Chains[j]
			if c.Hook != hook || (c.Type == "nat" && p.State != CtNew) {
				continue
			}
			out = append(out, tableChain{t, c})
		}
	}
	slices.SortStableFunc(out, func(a, b tableChain) int { return a.c.Priority - b.c.Priority })
	return out
}

// state is what a walk carries: the registers, the packet's mark, and the
// assumptions made so far.
type state struct {
	regs fields
	mark Value
	// pending are the reasons the current rule's matches held only maybe.
	pending []string
	assumed []string
	because []string
}

func (s state) clone() state {
	s.regs = slices.Clone(s.regs)
	s.pending = slices.Clone(s.pending)
	s.assumed = slices.Clone(s.assumed)
	s.because = slices.Clone(s.because)
	return s
}

// assume records that the walk took a side of the current rule.
func (s *state) assume(r *Rule, matched bool) {
	verb := "matched"
	if !matched {
		verb = "did not match"
	}
	s.assumed = append(s.assumed, fmt.Sprintf("%q %s", r.Text, verb))
	for _, why := range s.pending {
		if !slices.Contains(s.because, why) {
			s.because = append(s.because, why)
		}
	}
	s.pending = nil
}

type evaluator struct {
	budget int
}

type walkCtx struct {
	p    *Packet
	t    *Table
	base *Chain
	hook string
}

type frame struct {
	chain *Chain
	idx   int
}

type result struct {
	leaf Leaf
	st   state
}

// walk evaluates the base chain for one state.
func (e *evaluator) walk(c *walkCtx, st state) []result {
	var out []result
	e.run(c, nil, frame{chain: c.base}, st, &out)
	return out
}

func (c *walkCtx) leaf(o Outcome, ch *Chain, r *Rule, st state) result {
	return result{leaf: Leaf{Outcome: o, Table: c.t, Base: c.base, Hook: c.hook, Chain: ch, Rule: r,
		Assumed: st.assumed, Because: st.because}, st: st}
}

// run follows the chains from cur (with stack the frames to return to)
// until the walk ends, appending its ends to out.
func (e *evaluator) run(c *walkCtx, stack []frame, cur frame, st state, out *[]result) {
	for {
		if cur.idx >= len(cur.chain.Rules) {
			if len(stack) == 0 {
				o := Accepted
				if c.base.Policy == "drop" {
					o = Dropped
				}
				*out = append(*out, c.leaf(o, c.base, nil, st))
				return
			}
			cur, stack = stack[len(stack)-1], stack[:len(stack)-1]
			continue
		}
		r := &cur.chain.Rules[cur.idx]
		cur.idx++
		brs := e.rule(c, r, st)
		if len(brs) > 1 {
			e.budget -= len(brs) - 1
			if e.budget < 0 {
				l := c.leaf(Unknown, cur.chain, r, st)
				l.leaf.Why = "too many possibilities to follow"
				*out = append(*out, l)
				return
			}
			for _, b := range brs[1:] {
				e.follow(c, slices.Clone(stack), cur, r, b, out)
			}
		}
		if len(brs) == 0 {
			return
		}
		b := brs[0]
		if b.kind == bNext {
			st = b.st
			continue
		}
		e.follow(c, stack, cur, r, b, out)
		return
	}
}

// follow continues a walk after one branch of rule r (in cur.chain).
func (e *evaluator) follow(c *walkCtx, stack []frame, cur frame, r *Rule, b branch, out *[]result) {
	switch b.kind {
	case bNext:
		e.run(c, stack, cur, b.st, out)
		return
	case bUnknown:
		l := c.leaf(Unknown, cur.chain, r, b.st)
		l.leaf.Why = b.why
		*out = append(*out, l)
		return
	}
	switch b.verdict {
	case expr.VerdictAccept:
		*out = append(*out, c.leaf(Accepted, cur.chain, r, b.st))
	case expr.VerdictDrop:
		l := c.leaf(Dropped, cur.chain, r, b.st)
		l.leaf.Reject = b.reject
		*out = append(*out, l)
	case expr.VerdictContinue, expr.VerdictBreak:
		e.run(c, stack, cur, b.st, out)
	case expr.VerdictReturn:
		if len(stack) == 0 {
			// A return from the base chain: its policy.
			e.run(c, nil, frame{chain: cur.chain, idx: len(cur.chain.Rules)}, b.st, out)
			return
		}
		e.run(c, stack[:len(stack)-1], stack[len(stack)-1], b.st, out)
	case expr.VerdictJump, expr.VerdictGoto:
		to := c.t.chain(b.chain)
		if to == nil || len(stack) >= maxJumps {
			l := c.leaf(Unknown, cur.chain, r, b.st)
			l.leaf.Why = "a jump braid cannot follow (to " + b.chain + ")"
			*out = append(*out, l)
			return
		}
		if b.verdict == expr.VerdictJump {
			stack = append(stack, cur)
		}
		e.run(c, stack, frame{chain: to}, b.st, out)
	default:
		l := c.leaf(Unknown, cur.chain, r, b.st)
		l.leaf.Why = fmt.Sprintf("verdict %d, which braid does not model", b.verdict)
		*out = append(*out, l)
	}
}

type branchKind int

const (
	// bNext: the rule did not match, or matched without a verdict: on to
	// the next rule.
	bNext branchKind = iota
	bVerdict
	bUnknown
)

type branch struct {
	kind    branchKind
	verdict expr.VerdictKind
	chain   string
	reject  bool
	why     string
	st      state
}

// rule evaluates one rule's expressions, in order, for a state: every
// way it can end.
func (e *evaluator) rule(c *walkCtx, r *Rule, st state) []branch {
	var out []branch
	e.exprs(c, r, 0, st, &out)
	return out
}

// verdictBranches ends a rule with a verdict: when its matches held only
// maybe, both the verdict and the rule not matching.
func verdictBranches(r *Rule, st state, b branch, out *[]branch) {
	if len(st.pending) == 0 {
		b.st = st
		*out = append(*out, b)
		return
	}
	no := st.clone()
	no.assume(r, false)
	*out = append(*out, branch{kind: bNext, st: no})
	st.assume(r, true)
	b.st = st
	*out = append(*out, b)
}

// exprs evaluates r's expressions from i on.
func (e *evaluator) exprs(c *walkCtx, r *Rule, i int, st state, out *[]branch) {
	for ; i < len(r.Exprs); i++ {
		x := r.Exprs[i]
		// A verdict ends the rule.
		if v, ok := x.(*expr.Verdict); ok {
			verdictBranches(r, st, branch{kind: bVerdict, verdict: v.Kind, chain: v.Chain}, out)
			return
		}
		step := e.expr(c, x, &st)
		switch step.kind {
		case stepOn:
		case stepMatch:
			switch step.t {
			case False:
				st.pending = nil
				*out = append(*out, branch{kind: bNext, st: st})
				return
			case Maybe:
				st.pending = append(st.pending, step.why)
			}
		case stepVerdict:
			verdictBranches(r, st, branch{kind: bVerdict, verdict: step.verdict, reject: step.reject}, out)
			return
		case stepUnknown:
			verdictBranches(r, st, branch{kind: bUnknown, why: step.why}, out)
			return
		case stepFork:
			// A verdict map: each verdict some of the packets may meet.
			for _, f := range step.forks {
				s := st.clone()
				if f.why != "" {
					s.pending = append(s.pending, f.why)
				}
				if f.none {
					// No element: the lookup breaks the rule.
					if len(s.pending) > 0 {
						s.assume(r, false)
					}
					*out = append(*out, branch{kind: bNext, st: s})
					continue
				}
				verdictBranches(r, s, branch{kind: bVerdict, verdict: f.v.Kind, chain: f.v.Chain}, out)
			}
			return
		}
	}
	st.pending = nil
	*out = append(*out, branch{kind: bNext, st: st})
}

type stepKind int

const (
	stepOn      stepKind = iota // a load or a statement: on to the next expression
	stepMatch                   // a match: t says whether it held
	stepVerdict                 // a terminal statement (reject, NAT)
	stepUnknown                 // a statement braid does not model decided
	stepFork                    // a verdict map lookup
)

type step struct {
	kind    stepKind
	t       Tri
	why     string
	verdict expr.VerdictKind
	reject  bool
	forks   []vmapFork
}

type vmapFork struct {
	v    expr.Verdict
	none bool
	why  string
}

func on() step { return step{kind: stepOn} }

func match(t Tri, why string) step { return step{kind: stepMatch, t: t, why: why} }

func unknown(why string) step { return step{kind: stepUnknown, why: why} }

// describe names an expression for a person, in messages.
func describe(x expr.Any) string {
	switch x := x.(type) {
	case *expr.Match:
		return fmt.Sprintf("xt match %q", x.Name)
	case *expr.Target:
		return fmt.Sprintf("xt target %q", x.Name)
	case *Opaque:
		return fmt.Sprintf("expression %q", x.Name)
	}
	return strings.ToLower(strings.TrimPrefix(fmt.Sprintf("%T", x), "*expr."))
}
