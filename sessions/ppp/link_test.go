package ppp

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/braid-router/braid/sessions/ppp/frame"
)

// pipe delivers frames to a link on a goroutine of its own, in order, as
// a socket would.
type pipe struct {
	ch chan []byte
}

func newPipe(ctx context.Context, to func() *Link) *pipe {
	p := &pipe{ch: make(chan []byte, 256)}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case f := <-p.ch:
				to().Input(f)
			}
		}
	}()
	return p
}

func (p *pipe) send(f []byte) error {
	select {
	case p.ch <- bytes.Clone(f):
	default: // full: lost, as on a network
	}
	return nil
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Two of braid's own Links, back to back. This is a unit test of the
// driver (timers, queues, Up, Run's end), NOT a test against a real PPP
// peer: both sides are this code, so a shared misreading of an RFC would
// pass. The real peer is pppd, in the L2TP tests.
func TestLoopbackOfTwoBraidLinks(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var a, b *Link
	toA := newPipe(ctx, func() *Link { return a })
	toB := newPipe(ctx, func() *Link { return b })
	cfg := Config{Keepalive: 20 * time.Millisecond, KeepaliveFailures: 50, Restart: 50 * time.Millisecond}
	a = New(cfg, toB.send, slog.New(slog.DiscardHandler))
	b = New(cfg, toA.send, slog.New(slog.DiscardHandler))

	ctxA, stopA := context.WithCancel(ctx)
	errA, errB := make(chan error, 1), make(chan error, 1)
	go func() { errA <- a.Run(ctxA) }()
	go func() { errB <- b.Run(ctx) }()
	for _, l := range []*Link{a, b} {
		select {
		case <-l.Up():
		case <-time.After(30 * time.Second):
			t.Fatalf("not up: %+v", l.Info())
		}
	}
	la, pa, mruA := a.Negotiated()
	lb, pb, _ := b.Negotiated()
	if la != pb || lb != pa || la == lb || mruA != 1500 {
		t.Fatalf("a: %x/%x, b: %x/%x, MRU %d", la, pa, lb, pb, mruA)
	}
	waitFor(t, "an echo round trip", func() bool { return a.Info().EchoRTT > 0 })
	if i := a.Info(); i.Phase != "network" || i.IPV6CP != "Opened" || i.UpSince.IsZero() {
		t.Fatalf("info %+v", i)
	}
	stopA()
	if err := <-errA; !errors.Is(err, context.Canceled) {
		t.Fatalf("a ended with %v", err)
	}
	select {
	case err := <-errB:
		if !errors.Is(err, ErrPeerTerminated) {
			t.Fatalf("b ended with %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("b did not end after a terminated")
	}
}

// A peer that never answers: Run ends with ErrNotConverged once the
// restart timer has sent Max-Configure requests.
func TestRunNoAnswer(t *testing.T) {
	var mu sync.Mutex
	var sent int
	l := New(Config{Restart: 5 * time.Millisecond}, func([]byte) error { mu.Lock(); sent++; mu.Unlock(); return nil }, nil)
	err := l.Run(t.Context())
	if !errors.Is(err, ErrNotConverged) {
		t.Fatalf("Run: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if sent != 10 {
		t.Fatalf("%d Configure-Requests, want 10", sent)
	}
}

// scriptedPAP is a peer of a few lines that asks for PAP and refuses it.
// A unit test of the driver's error and logs; the real PAP peer is pppd.
func TestRunAuthRefusedAndPasswordNotLogged(t *testing.T) {
	var logs bytes.Buffer
	var logMu sync.Mutex
	log := slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var l *Link
	toLink := newPipe(ctx, func() *Link { return l })
	peer := func(b []byte) error {
		f, err := frame.Parse(b)
		if err != nil {
			t.Errorf("braid sent % x", b)
			return nil
		}
		if f.Protocol == frame.ProtoPAP {
			a, _ := frame.ParsePAP(f.Info)
			return toLink.send(frame.PAP{Code: frame.PAPNak, ID: a.ID, Message: []byte("bad login")}.Append(frame.Append(nil, frame.ProtoPAP, nil)))
		}
		p, err := frame.ParsePacket(f.Info)
		if err != nil || f.Protocol != frame.ProtoLCP {
			return nil
		}
		switch p.Code {
		case frame.ConfigureRequest:
			toLink.send(frame.Packet{Code: frame.ConfigureAck, ID: p.ID, Data: p.Data}.Frame(nil, frame.ProtoLCP))
			toLink.send(frame.Packet{Code: frame.ConfigureRequest, ID: 1, Data: frame.EncodeOptions([]frame.Option{frame.AuthPAP(), frame.Magic(99)})}.Frame(nil, frame.ProtoLCP))
		case frame.TerminateRequest:
			toLink.send(frame.Packet{Code: frame.TerminateAck, ID: p.ID}.Frame(nil, frame.ProtoLCP))
		}
		return nil
	}
	cfg := Config{Username: "dhcp/192.0.2.7@0024d4aabbcc", Password: []byte("hunter2-secret"), Restart: 20 * time.Millisecond}
	l = New(cfg, peer, log)
	log.Info("starting", "config", cfg)
	err := l.Run(ctx)
	if !errors.Is(err, ErrAuthRefused) || err.Error() == "" {
		t.Fatalf("Run: %v", err)
	}
	logMu.Lock()
	defer logMu.Unlock()
	if bytes.Contains(logs.Bytes(), []byte("hunter2")) {
		t.Fatalf("the password is in the logs:\n%s", logs.String())
	}
	if !bytes.Contains(logs.Bytes(), []byte("PPP authentication refused")) {
		t.Fatalf("the logs do not say why:\n%s", logs.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

// Frames that come before Run (the LNS speaks first) are answered once
// Run starts, not dropped.
func TestInputBeforeRun(t *testing.T) {
	acked := make(chan struct{})
	var once sync.Once
	l := New(Config{Restart: time.Hour}, func(b []byte) error {
		f, _ := frame.Parse(b)
		if p, err := frame.ParsePacket(f.Info); err == nil && f.Protocol == frame.ProtoLCP && p.Code == frame.ConfigureAck && p.ID == 42 {
			once.Do(func() { close(acked) })
		}
		return nil
	}, nil)
	l.Input(frame.Packet{Code: frame.ConfigureRequest, ID: 42, Data: frame.EncodeOptions([]frame.Option{frame.Magic(5)})}.Frame(nil, frame.ProtoLCP))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	select {
	case <-acked:
	case <-time.After(30 * time.Second):
		t.Fatal("the Configure-Request from before Run was never acknowledged")
	}
	cancel()
	<-done
}
