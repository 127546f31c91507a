package dataplane

import (
	"errors"
	"fmt"
	"os"

	vnl "github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/braid-router/braid/drivers/netlink"
)

// addrGenModeNone is IN6_ADDR_GEN_MODE_NONE: the kernel makes no IPv6
// link-local address for the link.
const addrGenModeNone = 1

// Link is the tunnel's TUN link, made by CreateLink. It exists while braid
// holds it: Close (or the end of braid's process) removes it.
type Link struct {
	dev   tun.Device
	name  string
	index int
	mtu   int
}

// CreateLink creates the TUN link name in the calling thread's network
// namespace, not persistent, with braid's mark for owner (what it is for:
// "tunnel/sixpe", see netlink.CreatedAlias) and MTU mtu, and sets it up.
// It fails if a link of that name exists: braid never takes over a link it
// did not make. The kernel gives it no IPv6 address of its own. The link carries IPv6 only: mtu must be at least MinMTU.
func CreateLink(name string, mtu int, owner string) (l *Link, err error) {
	if mtu < MinMTU {
		return nil, fmt.Errorf("tunnel link %s: MTU %d is below IPv6's minimum of %d (the uplink's MTU is too small for the tunnel's overhead of %d)", name, mtu, MinMTU, Overhead)
	}
	if len(name) == 0 || len(name) >= unix.IFNAMSIZ {
		return nil, fmt.Errorf("tunnel link %q: a link name has 1 to %d characters", name, unix.IFNAMSIZ-1)
	}
	if _, err := vnl.LinkByName(name); err == nil {
		return nil, fmt.Errorf("tunnel link %s: a link of that name exists already, and braid only uses a link it creates", name)
	}
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("tunnel link %s: open /dev/net/tun: %w", name, err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("tunnel link %s: %w", name, err)
	}
	// No TUNSETPERSIST: the link goes with the last descriptor.
	// IFF_VNET_HDR lets the kernel hand over TCP bursts unsegmented.
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("tunnel link %s: create (TUNSETIFF): %w", name, err)
	}
	// From here on, the device (and so the link) closes with dev.
	dev, got, err := tun.CreateUnmonitoredTUNFromFD(fd)
	if err != nil {
		// The library wrapped fd in an *os.File it did not return:
		// closing fd here could close whatever reuses its number
		// when that file's finalizer runs, so the finalizer closes it.
		return nil, fmt.Errorf("tunnel link %s: offloads: %w", name, err)
	}
	defer func() {
		if err != nil {
			dev.Close()
		}
	}()
	if got != name {
		return nil, fmt.Errorf("tunnel link %s: the kernel named it %s", name, got)
	}
	lk, err := vnl.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("tunnel link %s: %w", name, err)
	}
	if err := vnl.LinkSetAlias(lk, netlink.CreatedAlias(owner)); err != nil {
		return nil, fmt.Errorf("tunnel link %s: mark it braid's: %w", name, err)
	}
	if err := vnl.LinkSetMTU(lk, mtu); err != nil {
		return nil, fmt.Errorf("tunnel link %s: set mtu %d: %w", name, mtu, err)
	}
	// No kernel-made link-local address: the link's is the one IPV6CP
	// negotiates, which the session adds (and until then, nothing of the
	// kernel's own, router solicitations or MLD reports, goes out).
	if err := vnl.LinkSetIP6AddrGenMode(lk, addrGenModeNone); err != nil {
		return nil, fmt.Errorf("tunnel link %s: set addrgenmode none: %w", name, err)
	}
	if err := vnl.LinkSetUp(lk); err != nil {
		return nil, fmt.Errorf("tunnel link %s: set up: %w", name, err)
	}
	return &Link{dev: dev, name: name, index: lk.Attrs().Index, mtu: mtu}, nil
}

// Name is the link's name.
func (l *Link) Name() string { return l.name }

// Index is the link's interface index.
func (l *Link) Index() int { return l.index }

// MTU is the MTU the link was created with.
func (l *Link) MTU() int { return l.mtu }

// Close closes braid's descriptor of the link, which removes it. A Plane
// using it must have stopped.
func (l *Link) Close() error {
	if err := l.dev.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
		return fmt.Errorf("tunnel link %s: close: %w", l.name, err)
	}
	return nil
}
