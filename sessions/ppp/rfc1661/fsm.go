package rfc1661

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/braid-router/braid/sessions/ppp/frame"
)

// State is a state of RFC 1661's option negotiation automaton (section
// 4.2), which LCP, IPV6CP and IPCP each run.
type State int

// The automaton's states, numbered as RFC 1661's table numbers them.
const (
	Initial  State = iota // the lower layer is down, no Open
	Starting              // an Open, the lower layer still down
	Closed                // the lower layer up, no Open
	Stopped               // after Terminate or a failure, waiting for the peer
	Closing               // a Terminate-Request sent after a Close
	Stopping              // a Terminate-Request sent (or answered) without a Close
	ReqSent               // a Configure-Request sent, nothing acknowledged yet
	AckRcvd               // our request acknowledged, the peer's not yet
	AckSent               // the peer's request acknowledged, ours not yet
	Opened                // both acknowledged: the layer is up
)

var stateNames = [...]string{"Initial", "Starting", "Closed", "Stopped", "Closing", "Stopping", "Req-Sent", "Ack-Rcvd", "Ack-Sent", "Opened"}

// String names the state as RFC 1661 does.
func (s State) String() string {
	if s < 0 || int(s) >= len(stateNames) {
		return fmt.Sprintf("State(%d)", int(s))
	}
	return stateNames[s]
}

// Timers are the automaton's restart timer and counters (RFC 1661
// section 4.6). A zero field takes the RFC's default.
type Timers struct {
	// Restart is the wait for an answer to a Configure-Request or a
	// Terminate-Request before it is sent again (3 s).
	Restart time.Duration
	// MaxTerminate is how many Terminate-Requests go unanswered before
	// the peer is assumed gone (2).
	MaxTerminate int
	// MaxConfigure is how many Configure-Requests go unanswered before
	// the peer is assumed unable to answer (10). It also bounds the
	// Configure-Naks the peer may send in a row before braid gives up on
	// converging.
	MaxConfigure int
	// MaxFailure is how many Configure-Naks braid sends in a row before
	// it rejects what it would have Nak'd instead (5).
	MaxFailure int
}

// RFC 1661's defaults (section 4.6).
const (
	DefaultRestart      = 3 * time.Second
	DefaultMaxTerminate = 2
	DefaultMaxConfigure = 10
	DefaultMaxFailure   = 5
)

func (t Timers) withDefaults() Timers {
	if t.Restart <= 0 {
		t.Restart = DefaultRestart
	}
	if t.MaxTerminate <= 0 {
		t.MaxTerminate = DefaultMaxTerminate
	}
	if t.MaxConfigure <= 0 {
		t.MaxConfigure = DefaultMaxConfigure
	}
	if t.MaxFailure <= 0 {
		t.MaxFailure = DefaultMaxFailure
	}
	return t
}

// layer is what one control protocol brings to the automaton: its
// options, and what happens when it goes up or down.
type layer interface {
	// request is the options of braid's next Configure-Request.
	request() []frame.Option
	// acked takes the options of braid's request, acknowledged.
	acked(opts []frame.Option)
	// naked and rejected adjust braid's next request to a Configure-Nak
	// or a Configure-Reject of its last one; they return an error for a
	// reply that is not a valid one (the packet is discarded).
	naked(opts []frame.Option) error
	rejected(opts []frame.Option) error
	// check decides on the peer's Configure-Request: ConfigureAck,
	// ConfigureNak with the options to Nak, or ConfigureReject with the
	// options to reject. An error discards the request.
	check(opts []frame.Option) (uint8, []frame.Option, error)
	// up, down, started and finished are RFC 1661's This-Layer-Up,
	// -Down, -Started and -Finished.
	up(now time.Time)
	down(now time.Time)
	started(now time.Time)
	finished(now time.Time)
	// other handles a packet whose code is beyond Code-Reject
	// (Protocol-Reject, Echo...: LCP's). It reports false for a code the
	// layer does not know, which is then Code-Rejected.
	other(p frame.Packet, now time.Time) bool
	// fatalReject reports whether a Code-Reject of code is
	// catastrophic (RXJ-) for the layer.
	fatalReject(code uint8) bool
}

// ErrNotConverged is a negotiation that did not end: the peer did not
// answer braid's requests, or kept Nak'ing them.
var ErrNotConverged = errors.New("PPP negotiation did not converge")

// fsm is RFC 1661's automaton for one control protocol (section 4).
type fsm struct {
	proto  uint16
	layer  layer
	timers Timers
	// send hands a packet of this protocol to the link.
	send func(p frame.Packet)
	// trace, when set, is told each of RFC 1661's actions (tlu, scr...)
	// by its name: the table tests read it.
	trace func(action string)
	// peerMRU, when set, is the largest packet the peer takes: a
	// Code-Reject is cut to it (RFC 1661 section 5.6).
	peerMRU func() int

	state    State
	restarts int       // the restart counter
	due      time.Time // the restart timer; zero when stopped
	nextID   uint8     // the Identifier of the next request
	reqID    uint8     // the Identifier of the outstanding Configure-Request
	reqSent  []byte    // its options, as sent
	termID   uint8     // the Identifier of the outstanding Terminate-Request
	terming  bool      // the restart timer runs for a Terminate-Request
	naksSent int       // Configure-Naks sent since the last Configure-Ack sent
	naksRcvd int       // Configure-Naks received since the last Configure-Ack received
	reason   error     // why the layer closed or finished, for the owner
}

func newFSM(proto uint16, l layer, t Timers, send func(frame.Packet)) *fsm {
	return &fsm{proto: proto, layer: l, timers: t.withDefaults(), send: send}
}

func (f *fsm) note(a string) {
	if f.trace != nil {
		f.trace(a)
	}
}

// deadline is when the restart timer expires; zero when it is stopped.
func (f *fsm) deadline() time.Time { return f.due }

// The actions of RFC 1661 section 4.4.

func (f *fsm) tlu(now time.Time) { f.note("tlu"); f.layer.up(now) }
func (f *fsm) tld(now time.Time) { f.note("tld"); f.layer.down(now) }
func (f *fsm) tls(now time.Time) { f.note("tls"); f.layer.started(now) }
func (f *fsm) tlf(now time.Time) { f.note("tlf"); f.due = time.Time{}; f.layer.finished(now) }

// irc initializes the restart counter for a Configure-Request or a
// Terminate-Request.
func (f *fsm) irc(terminate bool) {
	f.note("irc")
	if terminate {
		f.restarts = f.timers.MaxTerminate
	} else {
		f.restarts = f.timers.MaxConfigure
	}
}

// zrc zeroes the restart counter and starts the timer: the wait after a
// Terminate-Ack, for the peer to see it.
func (f *fsm) zrc(now time.Time) {
	f.note("zrc")
	f.restarts = 0
	f.terming = true
	f.due = now.Add(f.timers.Restart)
}

// scr sends a Configure-Request: a new one (new Identifier, options asked
// of the layer again) unless retransmit.
func (f *fsm) scr(now time.Time, retransmit bool) {
	f.note("scr")
	if !retransmit || f.reqSent == nil {
		f.reqID = f.nextID
		f.nextID++
		f.reqSent = frame.EncodeOptions(f.layer.request())
	}
	f.restarts--
	f.terming = false
	f.due = now.Add(f.timers.Restart)
	f.send(frame.Packet{Code: frame.ConfigureRequest, ID: f.reqID, Data: f.reqSent})
}

func (f *fsm) sca(id uint8, opts []byte) {
	f.note("sca")
	f.naksSent = 0
	f.send(frame.Packet{Code: frame.ConfigureAck, ID: id, Data: opts})
}

func (f *fsm) scn(id uint8, code uint8, opts []frame.Option) {
	f.note("scn")
	if code == frame.ConfigureNak {
		f.naksSent++
	}
	f.send(frame.Packet{Code: code, ID: id, Data: frame.EncodeOptions(opts)})
}

func (f *fsm) str(now time.Time) {
	f.note("str")
	f.termID = f.nextID
	f.nextID++
	f.restarts--
	f.terming = true
	f.due = now.Add(f.timers.Restart)
	var data []byte
	if f.reason != nil {
		data = []byte(f.reason.Error())
	}
	f.send(frame.Packet{Code: frame.TerminateRequest, ID: f.termID, Data: data})
}

func (f *fsm) sta(id uint8) {
	f.note("sta")
	f.send(frame.Packet{Code: frame.TerminateAck, ID: id})
}

func (f *fsm) scj(p frame.Packet) {
	f.note("scj")
	rejected := p.Append(nil)
	limit := DefaultMRU
	if f.peerMRU != nil {
		limit = f.peerMRU()
	}
	if room := limit - frame.PacketHeaderLen; len(rejected) > room {
		rejected = rejected[:room]
	}
	f.send(frame.Packet{Code: frame.CodeReject, ID: f.nextID, Data: rejected})
	f.nextID++
}

// stopTimer stops the restart timer (the states without one).
func (f *fsm) stopTimer() { f.due = time.Time{} }

// setState moves to s; the states that wait on nothing stop the timer.
func (f *fsm) setState(s State) {
	f.state = s
	switch s {
	case Initial, Starting, Closed, Stopped, Opened:
		f.stopTimer()
	}
}

// The events of RFC 1661 section 4.3, each a row of its state table.

// Up is the lower layer coming up.
func (f *fsm) Up(now time.Time) {
	switch f.state {
	case Initial:
		f.setState(Closed)
	case Starting:
		f.irc(false)
		f.scr(now, false)
		f.setState(ReqSent)
	}
}

// Down is the lower layer going down.
func (f *fsm) Down(now time.Time) {
	switch f.state {
	case Closed, Closing:
		f.setState(Initial)
	case Stopped:
		f.tls(now)
		f.setState(Starting)
	case Stopping, ReqSent, AckRcvd, AckSent:
		f.setState(Starting)
	case Opened:
		f.tld(now)
		f.setState(Starting)
	}
}

// Open is the administrative Open.
func (f *fsm) Open(now time.Time) {
	switch f.state {
	case Initial:
		f.tls(now)
		f.setState(Starting)
	case Closed:
		f.irc(false)
		f.scr(now, false)
		f.setState(ReqSent)
	case Closing:
		f.setState(Stopping)
	}
}

// Close is the administrative Close, for reason (sent in the
// Terminate-Request, kept for the owner).
func (f *fsm) Close(now time.Time, reason error) {
	if reason != nil && f.reason == nil {
		f.reason = reason
	}
	switch f.state {
	case Starting:
		f.tlf(now)
		f.setState(Initial)
	case Stopped:
		f.setState(Closed)
	case Stopping:
		f.setState(Closing)
	case ReqSent, AckRcvd, AckSent:
		f.irc(true)
		f.str(now)
		f.setState(Closing)
	case Opened:
		f.tld(now)
		f.irc(true)
		f.str(now)
		f.setState(Closing)
	}
}

// fail ends the negotiation for reason: a Close that keeps the layer
// Stopped rather than Closed once the peer answers.
func (f *fsm) fail(now time.Time, reason error) {
	f.Close(now, reason)
}

// Timeout is the restart timer expiring at now: TO+ or TO-.
func (f *fsm) Timeout(now time.Time) {
	if f.due.IsZero() || now.Before(f.due) {
		return
	}
	f.due = time.Time{}
	if f.restarts > 0 {
		switch f.state {
		case Closing, Stopping:
			f.str(now)
		case ReqSent, AckRcvd:
			f.scr(now, true)
			f.setState(ReqSent)
		case AckSent:
			f.scr(now, true)
		}
		return
	}
	switch f.state {
	case Closing:
		f.tlf(now)
		f.setState(Closed)
	case Stopping:
		f.tlf(now)
		f.setState(Stopped)
	case ReqSent, AckRcvd, AckSent:
		if f.reason == nil {
			f.reason = fmt.Errorf("%w: no answer from the peer to %d %s Configure-Requests", ErrNotConverged, f.timers.MaxConfigure, frame.ProtocolName(f.proto))
		}
		f.tlf(now)
		f.setState(Stopped)
	}
}

// Receive is a packet of this protocol from the peer.
func (f *fsm) Receive(p frame.Packet, now time.Time) {
	if f.state == Initial || f.state == Starting {
		return // the lower layer is down: nothing can arrive
	}
	switch p.Code {
	case frame.ConfigureRequest:
		f.rcr(p, now)
	case frame.ConfigureAck:
		f.rca(p, now)
	case frame.ConfigureNak, frame.ConfigureReject:
		f.rcn(p, now)
	case frame.TerminateRequest:
		f.rtr(p, now)
	case frame.TerminateAck:
		f.rta(now)
	case frame.CodeReject:
		if len(p.Data) < 1 {
			return
		}
		f.rxj(!f.layer.fatalReject(p.Data[0]), now, fmt.Errorf("the peer rejected %s code %d (%s)", frame.ProtocolName(f.proto), p.Data[0], frame.CodeName(p.Data[0])))
	default:
		if !f.layer.other(p, now) {
			f.scj(p) // RUC
		}
	}
}

// rcr is RCR+ or RCR-.
func (f *fsm) rcr(p frame.Packet, now time.Time) {
	opts, err := frame.ParseOptions(p.Data)
	if err != nil {
		return // RFC 1661 section 6: a malformed request is discarded
	}
	switch f.state {
	case Closing, Stopping:
		return
	case Closed:
		f.sta(p.ID)
		return
	}
	code, reply, err := f.layer.check(opts)
	if err != nil {
		return
	}
	if code == frame.ConfigureNak && f.naksSent >= f.timers.MaxFailure {
		// Max-Failure: not converging, so what would be Nak'd is
		// rejected (RFC 1661 section 4.6). Options the peer did not send
		// cannot be rejected: they are left out.
		var rej []frame.Option
		for _, r := range reply {
			for _, o := range opts {
				if o.Type == r.Type {
					rej = append(rej, o)
					break
				}
			}
		}
		code, reply = frame.ConfigureReject, rej
		if len(reply) == 0 {
			code = frame.ConfigureAck
		}
	}
	good := code == frame.ConfigureAck
	send := func() {
		if good {
			f.sca(p.ID, p.Data)
		} else {
			f.scn(p.ID, code, reply)
		}
	}
	switch f.state {
	case Stopped:
		f.irc(false)
		f.scr(now, false)
		send()
		f.setState(map[bool]State{true: AckSent, false: ReqSent}[good])
	case ReqSent, AckSent:
		send()
		f.setState(map[bool]State{true: AckSent, false: ReqSent}[good])
	case AckRcvd:
		send()
		if good {
			f.tlu(now)
			f.setState(Opened)
		}
	case Opened:
		f.tld(now)
		f.scr(now, false)
		send()
		f.setState(map[bool]State{true: AckSent, false: ReqSent}[good])
	}
}

// rca is RCA: an Ack of braid's outstanding request, octet for octet
// (RFC 1661 section 5.2), else discarded.
func (f *fsm) rca(p frame.Packet, now time.Time) {
	if f.reqSent == nil || p.ID != f.reqID || !bytes.Equal(p.Data, f.reqSent) {
		return
	}
	switch f.state {
	case Closed, Stopped:
		f.sta(p.ID)
		return
	case Closing, Stopping:
		return
	}
	opts, _ := frame.ParseOptions(p.Data)
	f.naksRcvd = 0
	switch f.state {
	case ReqSent:
		f.layer.acked(opts)
		f.irc(false)
		f.setState(AckRcvd) // the timer runs on, for the peer's request
	case AckRcvd:
		// crossed connection (x): start over
		f.scr(now, false)
		f.setState(ReqSent)
	case AckSent:
		f.layer.acked(opts)
		f.irc(false)
		f.tlu(now)
		f.setState(Opened)
	case Opened:
		f.tld(now)
		f.scr(now, false)
		f.setState(ReqSent)
	}
}

// rcn is RCN: a Nak or a Reject of braid's outstanding request.
func (f *fsm) rcn(p frame.Packet, now time.Time) {
	if f.reqSent == nil || p.ID != f.reqID {
		return
	}
	switch f.state {
	case Closed, Stopped:
		f.sta(p.ID)
		return
	case Closing, Stopping:
		return
	}
	opts, err := frame.ParseOptions(p.Data)
	if err != nil {
		return
	}
	if p.Code == frame.ConfigureReject {
		sent, _ := frame.ParseOptions(f.reqSent)
		if !subset(opts, sent) {
			return // RFC 1661 section 5.4: only options braid sent, unchanged
		}
		err = f.layer.rejected(opts)
	} else {
		f.naksRcvd++
		if f.naksRcvd > f.timers.MaxConfigure {
			f.fail(now, fmt.Errorf("%w: the peer Nak'd %d %s Configure-Requests in a row", ErrNotConverged, f.naksRcvd, frame.ProtocolName(f.proto)))
			return
		}
		err = f.layer.naked(opts)
	}
	if err != nil {
		return
	}
	switch f.state {
	case ReqSent:
		f.irc(false)
		f.scr(now, false)
	case AckRcvd:
		f.scr(now, false)
		f.setState(ReqSent)
	case AckSent:
		f.irc(false)
		f.scr(now, false)
	case Opened:
		f.tld(now)
		f.scr(now, false)
		f.setState(ReqSent)
	}
}

// subset reports whether every option of part is one of all, octet for
// octet.
func subset(part, all []frame.Option) bool {
	for _, p := range part {
		found := false
		for _, a := range all {
			if p.Equal(a) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// rtr is RTR: the peer's Terminate-Request.
func (f *fsm) rtr(p frame.Packet, now time.Time) {
	switch f.state {
	case Closed, Stopped, Closing, Stopping:
		f.sta(p.ID)
	case ReqSent, AckRcvd, AckSent:
		f.sta(p.ID)
		f.setState(ReqSent)
	case Opened:
		if f.reason == nil {
			f.reason = peerTerminated(p.Data)
		}
		f.tld(now)
		f.zrc(now)
		f.sta(p.ID)
		f.setState(Stopping)
	}
}

// rta is RTA: a Terminate-Ack.
func (f *fsm) rta(now time.Time) {
	switch f.state {
	case Closing:
		f.tlf(now)
		f.setState(Closed)
	case Stopping:
		f.tlf(now)
		f.setState(Stopped)
	case AckRcvd:
		f.setState(ReqSent)
	case Opened:
		f.tld(now)
		f.scr(now, false)
		f.setState(ReqSent)
	}
}

// rxj is RXJ+ (ok) or RXJ-: a Code-Reject or a Protocol-Reject.
func (f *fsm) rxj(ok bool, now time.Time, why error) {
	if ok {
		if f.state == AckRcvd {
			f.setState(ReqSent)
		}
		return
	}
	if f.reason == nil {
		f.reason = why
	}
	switch f.state {
	case Closed, Closing:
		f.tlf(now)
		f.setState(Closed)
	case Stopped, Stopping, ReqSent, AckRcvd, AckSent:
		f.tlf(now)
		f.setState(Stopped)
	case Opened:
		f.tld(now)
		f.irc(true)
		f.str(now)
		f.setState(Stopping)
	}
}

// ErrPeerTerminated is the peer closing the link (a Terminate-Request).
var ErrPeerTerminated = errors.New("PPP link terminated by the peer")

// peerTerminated is ErrPeerTerminated with the peer's reason, when it
// gave one that reads as text.
func peerTerminated(data []byte) error {
	if r := printable(data); r != "" {
		return fmt.Errorf("%w: %q", ErrPeerTerminated, r)
	}
	return ErrPeerTerminated
}

// printable is b as text when it is short printable ASCII, else "".
func printable(b []byte) string {
	if len(b) == 0 || len(b) > 200 {
		return ""
	}
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return ""
		}
	}
	return string(b)
}
