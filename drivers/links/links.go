// Package links observes the kernel links a spec names, present or not,
// and reports them as facts (facts.Interface): the compiler leaves out
// what is on a missing link (a 4G modem not plugged in) and configures it
// once the link appears, and sessions read a link's MAC address and
// carrier from them.
//
// Observe reads them once: the CLI does, at plan time. A Watcher keeps
// them current in the facts hub for the daemon: it observes again on
// every link notification of the kernel (a link created, removed, up,
// down, or losing its carrier), and publishes only what changed. The
// facts are bound to the process (observed again at every start), and
// live in the hub's slot Owner.
package links

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	vnl "github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/braid-router/braid/drivers/watch"
	"github.com/braid-router/braid/facts"
)

// Owner is the facts hub slot the links' facts live in.
const Owner = "kernel/links"

// dumpAttempts bounds the retries of a link dump the kernel interrupted
// because the links changed under it.
const dumpAttempts = 5

// Observe reports one fact per name, in order: what the kernel has of that
// link now, or that it has none. It reads the links of the network
// namespace of the calling thread with one dump.
func Observe(names []string) ([]facts.Fact, error) {
	return observe(nil, names)
}

// observe is Observe through h, or through the calling thread's namespace
// when h is nil.
func observe(h *vnl.Handle, names []string) ([]facts.Fact, error) {
	if len(names) == 0 {
		return nil, nil
	}
	var list []vnl.Link
	var err error
	for range dumpAttempts {
		if h != nil {
			list, err = h.LinkList()
		} else {
			list, err = vnl.LinkList()
		}
		if !errors.Is(err, vnl.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("observe links: %w", err)
	}
	byName := make(map[string]*vnl.LinkAttrs, len(list))
	for _, l := range list {
		a := l.Attrs()
		byName[a.Name] = a
	}
	out := make([]facts.Fact, 0, len(names))
	for _, n := range names {
		i := facts.Interface{Name: n}
		if a, ok := byName[n]; ok {
			i.Present, i.Index = true, a.Index
			i.MAC = a.HardwareAddr.String()
			i.Carrier = a.RawFlags&unix.IFF_LOWER_UP != 0
		}
		out = append(out, facts.Fact{Interface: &i, Process: true})
	}
	return out, nil
}

// Watcher keeps the facts of the links it watches current in a facts hub,
// in the slot Owner. Its methods are safe for concurrent use.
type Watcher struct {
	hub    *facts.Hub
	log    *slog.Logger
	events *watch.Kernel
	// h reads the links of the namespace the watcher was opened in,
	// whatever thread observes.
	h *vnl.Handle

	// mu serialises observations with their publications, so that the
	// newest observation is the one the hub keeps; names are the links
	// watched.
	mu    sync.Mutex
	names []string
}

// Open subscribes to the kernel's link notifications in the network
// namespace of the calling thread, where the links are then observed, and
// returns a watcher that publishes into hub. It watches no link until
// Watch names some.
func Open(hub *facts.Hub, log *slog.Logger) (*Watcher, error) {
	if hub == nil {
		return nil, errors.New("link watcher: no facts hub")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	events, err := watch.OpenLinks()
	if err != nil {
		return nil, fmt.Errorf("link watcher: %w", err)
	}
	h, err := vnl.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		events.Close()
		return nil, fmt.Errorf("link watcher: open rtnetlink socket: %w", err)
	}
	return &Watcher{hub: hub, log: log, events: events, h: h}, nil
}

// Watch makes names the links watched, observes them now and publishes
// what changed before it returns: a pass that compiles after it sees
// them. The daemon calls it before every pass with the links of the spec
// it converges.
func (w *Watcher) Watch(names []string) error {
	w.mu.Lock()
	w.names = slices.Clone(names)
	w.mu.Unlock()
	return w.refresh()
}

// refresh observes the watched links and publishes them (the hub ignores
// a publication that changes nothing).
func (w *Watcher) refresh() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	fs, err := observe(w.h, w.names)
	if err != nil {
		return err
	}
	if err := w.hub.Publish(Owner, fs); err != nil {
		return fmt.Errorf("publish the links' facts: %w", err)
	}
	return nil
}

// Run observes the watched links again on every link notification and
// publishes what changed, until ctx ends or the subscription fails. A
// failed observation is logged and retried at the next notification.
func (w *Watcher) Run(ctx context.Context) error {
	return w.events.Run(ctx, func() {
		if err := w.refresh(); err != nil {
			w.log.Warn("observing the links failed; trying again at their next change", "err", err)
		}
	})
}

// Close ends the subscription and closes the watcher's sockets.
func (w *Watcher) Close() error {
	w.h.Close()
	return w.events.Close()
}
