package rfc1661

import (
	"strings"
	"testing"
	"time"

	"github.com/braid-router/braid/sessions/ppp/frame"
)

// rfc1661Table is RFC 1661 section 4.1's state transition table, as
// printed: for each event, one cell per state (0 Initial .. 9 Opened),
// "actions/next state", "-" for an event that changes nothing. The
// suffixes r (restart option), x (crossed connection) and p (passive
// option) are notes, not actions; braid implements neither option, so
// its Open in Stopped, Closing and Stopping only moves the state.
var rfc1661Table = map[string][10]string{
	"Up":    {"2", "irc,scr/6", "-", "-", "-", "-", "-", "-", "-", "-"},
	"Down":  {"-", "-", "0", "tls/1", "0", "1", "1", "1", "1", "tld/1"},
	"Open":  {"tls/1", "1", "irc,scr/6", "3r", "5r", "5r", "6", "7", "8", "9r"},
	"Close": {"0", "tlf/0", "2", "2", "4", "4", "irc,str/4", "irc,str/4", "irc,str/4", "tld,irc,str/4"},
	"TO+":   {"-", "-", "-", "-", "str/4", "str/5", "scr/6", "scr/6", "scr/8", "-"},
	"TO-":   {"-", "-", "-", "-", "tlf/2", "tlf/3", "tlf/3p", "tlf/3p", "tlf/3p", "-"},
	"RCR+":  {"-", "-", "sta/2", "irc,scr,sca/8", "4", "5", "sca/8", "sca,tlu/9", "sca/8", "tld,scr,sca/8"},
	"RCR-":  {"-", "-", "sta/2", "irc,scr,scn/6", "4", "5", "scn/6", "scn/7", "scn/6", "tld,scr,scn/6"},
	"RCA":   {"-", "-", "sta/2", "sta/3", "4", "5", "irc/7", "scr/6x", "irc,tlu/9", "tld,scr/6x"},
	"RCN":   {"-", "-", "sta/2", "sta/3", "4", "5", "irc,scr/6", "scr/6x", "irc,scr/8", "tld,scr/6x"},
	"RTR":   {"-", "-", "sta/2", "sta/3", "sta/4", "sta/5", "sta/6", "sta/6", "sta/6", "tld,zrc,sta/5"},
	"RTA":   {"-", "-", "2", "3", "tlf/2", "tlf/3", "6", "6", "8", "tld,scr/6"},
	"RUC":   {"-", "-", "scj/2", "scj/3", "scj/4", "scj/5", "scj/6", "scj/7", "scj/8", "scj/9"},
	"RXJ+":  {"-", "-", "2", "3", "4", "5", "6", "6", "8", "9"},
	"RXJ-":  {"-", "-", "tlf/2", "tlf/3", "tlf/2", "tlf/3", "tlf/3", "tlf/3", "tlf/3", "tld,irc,str/5"},
	"RXR":   {"-", "-", "2", "3", "4", "5", "6", "7", "8", "ser/9"},
}

// stubLayer accepts or refuses the peer's requests as the test says,
// asks for one option, and names Echo-Request as its RXR.
type stubLayer struct {
	f      *fsm
	accept bool
}

func (s *stubLayer) request() []frame.Option       { return []frame.Option{frame.MRU(1500)} }
func (s *stubLayer) acked([]frame.Option)          {}
func (s *stubLayer) naked([]frame.Option) error    { return nil }
func (s *stubLayer) rejected([]frame.Option) error { return nil }
func (s *stubLayer) check([]frame.Option) (uint8, []frame.Option, error) {
	if s.accept {
		return frame.ConfigureAck, nil, nil
	}
	return frame.ConfigureNak, []frame.Option{frame.MRU(1500)}, nil
}
func (s *stubLayer) up(time.Time)                {}
func (s *stubLayer) down(time.Time)              {}
func (s *stubLayer) started(time.Time)           {}
func (s *stubLayer) finished(time.Time)          {}
func (s *stubLayer) fatalReject(code uint8) bool { return code != frame.EchoRequest }
func (s *stubLayer) other(p frame.Packet, _ time.Time) bool {
	if p.Code != frame.EchoRequest {
		return false
	}
	if s.f.state == Opened {
		s.f.note("ser")
	}
	return true
}

// TestRFC1661StateTable runs every event in every state and compares the
// actions and the next state with RFC 1661's table.
func TestRFC1661StateTable(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	for event, row := range rfc1661Table {
		for s, cell := range row {
			state := State(s)
			t.Run(event+" in "+state.String(), func(t *testing.T) {
				stub := &stubLayer{accept: event != "RCR-"}
				var sent []frame.Packet
				f := newFSM(frame.ProtoLCP, stub, Timers{}, func(p frame.Packet) { sent = append(sent, p) })
				stub.f = f
				var trace []string
				f.trace = func(a string) { trace = append(trace, a) }
				f.state = state
				// braid's outstanding request, for RCA and RCN to match.
				f.reqID, f.reqSent = 7, frame.EncodeOptions(stub.request())
				f.restarts = 3
				f.due = now.Add(time.Second)
				switch event {
				case "Up":
					f.Up(now)
				case "Down":
					f.Down(now)
				case "Open":
					f.Open(now)
				case "Close":
					f.Close(now, nil)
				case "TO+", "TO-":
					if event == "TO-" {
						f.restarts = 0
					}
					f.Timeout(now.Add(time.Second))
				case "RCR+", "RCR-":
					f.Receive(frame.Packet{Code: frame.ConfigureRequest, ID: 1, Data: frame.EncodeOptions([]frame.Option{frame.MRU(1400)})}, now)
				case "RCA":
					f.Receive(frame.Packet{Code: frame.ConfigureAck, ID: 7, Data: f.reqSent}, now)
				case "RCN":
					f.Receive(frame.Packet{Code: frame.ConfigureNak, ID: 7, Data: frame.EncodeOptions([]frame.Option{frame.MRU(1400)})}, now)
				case "RTR":
					f.Receive(frame.Packet{Code: frame.TerminateRequest, ID: 2}, now)
				case "RTA":
					f.Receive(frame.Packet{Code: frame.TerminateAck, ID: 2}, now)
				case "RUC":
					f.Receive(frame.Packet{Code: 42, ID: 3}, now)
				case "RXJ+":
					f.Receive(frame.Packet{Code: frame.CodeReject, ID: 4, Data: []byte{frame.EchoRequest, 1, 0, 8, 0, 0, 0, 0}}, now)
				case "RXJ-":
					f.Receive(frame.Packet{Code: frame.CodeReject, ID: 4, Data: []byte{frame.ConfigureRequest, 1, 0, 4}}, now)
				case "RXR":
					f.Receive(frame.Packet{Code: frame.EchoRequest, ID: 5, Data: []byte{0, 0, 0, 0}}, now)
				}
				wantActs, wantState := parseCell(t, cell, state)
				if got := strings.Join(trace, ","); got != wantActs || f.state != wantState {
					t.Fatalf("RFC 1661 says %q: got %q/%s, want %q/%s", cell, got, f.state, wantActs, wantState)
				}
				// Every action that sends, sent the packet it names.
				checkSent(t, trace, sent)
			})
		}
	}
}

// parseCell reads a cell of the table: its actions and next state.
func parseCell(t *testing.T, cell string, from State) (string, State) {
	t.Helper()
	if cell == "-" {
		return "", from
	}
	acts, state, ok := strings.Cut(cell, "/")
	if !ok {
		acts, state = "", cell
	}
	state = strings.TrimRight(state, "rxp")
	if len(state) != 1 || state[0] < '0' || state[0] > '9' {
		t.Fatalf("bad cell %q", cell)
	}
	return acts, State(state[0] - '0')
}

// checkSent matches the sending actions of a trace with the packets sent.
func checkSent(t *testing.T, trace []string, sent []frame.Packet) {
	t.Helper()
	codes := map[string]uint8{"scr": frame.ConfigureRequest, "sca": frame.ConfigureAck, "scn": frame.ConfigureNak,
		"str": frame.TerminateRequest, "sta": frame.TerminateAck, "scj": frame.CodeReject}
	var want []uint8
	for _, a := range trace {
		if c, ok := codes[a]; ok {
			want = append(want, c)
		}
	}
	if len(want) != len(sent) {
		t.Fatalf("actions %v sent %d packets", trace, len(sent))
	}
	for i, p := range sent {
		if p.Code != want[i] {
			t.Fatalf("actions %v: packet %d is %s", trace, i, frame.CodeName(p.Code))
		}
	}
}

// A retransmitted Configure-Request keeps its Identifier and options, so
// the Ack of a lost-then-late first request still counts; a new request
// after a Nak gets a new Identifier.
func TestRetransmitKeepsIdentifier(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	stub := &stubLayer{accept: true}
	var sent []frame.Packet
	f := newFSM(frame.ProtoLCP, stub, Timers{}, func(p frame.Packet) { sent = append(sent, p) })
	stub.f = f
	f.Open(now)
	f.Up(now)
	if f.Timeout(now.Add(DefaultRestart - time.Millisecond)); len(sent) != 1 {
		t.Fatalf("retransmitted before the restart timer: %d packets", len(sent))
	}
	f.Timeout(now.Add(DefaultRestart))
	if len(sent) != 2 || sent[1].ID != sent[0].ID || string(sent[1].Data) != string(sent[0].Data) {
		t.Fatalf("retransmission % x, first % x", sent[1].Append(nil), sent[0].Append(nil))
	}
	f.Receive(frame.Packet{Code: frame.ConfigureNak, ID: sent[0].ID, Data: frame.EncodeOptions([]frame.Option{frame.MRU(1400)})}, now)
	if len(sent) != 3 || sent[2].ID == sent[0].ID {
		t.Fatalf("the request after a Nak kept Identifier %d", sent[0].ID)
	}
	// An Ack of the old request no longer counts.
	f.Receive(frame.Packet{Code: frame.ConfigureAck, ID: sent[0].ID, Data: sent[0].Data}, now)
	if f.state != ReqSent {
		t.Fatalf("an Ack of a superseded request moved to %s", f.state)
	}
	// An Ack that changes the options does not count either (RFC 1661
	// section 5.2).
	f.Receive(frame.Packet{Code: frame.ConfigureAck, ID: sent[2].ID, Data: frame.EncodeOptions([]frame.Option{frame.MRU(1499)})}, now)
	if f.state != ReqSent {
		t.Fatalf("an Ack with other options moved to %s", f.state)
	}
	f.Receive(frame.Packet{Code: frame.ConfigureAck, ID: sent[2].ID, Data: sent[2].Data}, now)
	if f.state != AckRcvd {
		t.Fatalf("the Ack moved to %s", f.state)
	}
}

// Max-Configure Configure-Requests unanswered, then the layer finishes
// (TO-), Max-Configure of them in all.
func TestMaxConfigure(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	stub := &stubLayer{accept: true}
	var sent []frame.Packet
	f := newFSM(frame.ProtoLCP, stub, Timers{}, func(p frame.Packet) { sent = append(sent, p) })
	stub.f = f
	f.Open(now)
	f.Up(now)
	for i := 0; i < 20 && f.state == ReqSent; i++ {
		now = f.deadline()
		f.Timeout(now)
	}
	if f.state != Stopped || len(sent) != DefaultMaxConfigure {
		t.Fatalf("state %s after %d requests, want Stopped after %d", f.state, len(sent), DefaultMaxConfigure)
	}
	if f.reason == nil || !strings.Contains(f.reason.Error(), "did not converge") {
		t.Fatalf("reason %v", f.reason)
	}
}

// Max-Failure: after five Configure-Naks in a row, what braid would Nak
// it rejects instead (RFC 1661 section 4.6).
func TestMaxFailure(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	stub := &stubLayer{accept: false}
	var sent []frame.Packet
	f := newFSM(frame.ProtoLCP, stub, Timers{}, func(p frame.Packet) { sent = append(sent, p) })
	stub.f = f
	f.Open(now)
	f.Up(now)
	req := frame.Packet{Code: frame.ConfigureRequest, ID: 1, Data: frame.EncodeOptions([]frame.Option{frame.MRU(1400)})}
	var codes []uint8
	for range DefaultMaxFailure + 2 {
		sent = nil
		f.Receive(req, now)
		codes = append(codes, sent[len(sent)-1].Code)
	}
	for i, c := range codes {
		want := frame.ConfigureNak
		if i >= DefaultMaxFailure {
			want = frame.ConfigureReject
		}
		if c != want {
			t.Fatalf("reply %d is %s, want %s (all: %v)", i+1, frame.CodeName(c), frame.CodeName(want), codes)
		}
	}
	if got := sent[len(sent)-1].Data; string(got) != string(req.Data) {
		t.Fatalf("rejected % x, want the peer's option % x", got, req.Data)
	}
}
