// Package netns finds braid's name for the current network namespace and
// runs code inside another namespace on a locked OS thread.
package netns

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// NamedDir is where `ip netns` keeps named namespaces.
const NamedDir = "/run/netns"

// InitInode is the inode number of the initial network namespace since
// Linux 6.18 (NET_NS_INIT_INO in linux/nsfs.h); earlier kernels number it
// like any other, from 0xF0000000 up, so no other namespace ever has it.
const InitInode = 0xEFFFFFF9

// Current returns braid's name for the network namespace of the calling
// thread: the name under /run/netns whose inode matches, "host" for the
// initial namespace (that of PID 1), else "ns-<inode>". A process without
// CAP_SYS_PTRACE may not look at PID 1's namespace (braid under its
// systemd unit): it then knows the initial namespace by InitInode, which
// needs Linux 6.18 or later.
func Current() (string, error) {
	self, err := inode("/proc/thread-self/ns/net")
	if err != nil {
		return "", err
	}
	initNS, err := inode("/proc/1/ns/net")
	if err == nil && initNS == self || err != nil && self == InitInode {
		return "host", nil
	}
	entries, _ := os.ReadDir(NamedDir)
	for _, e := range entries {
		if ino, err := inode(filepath.Join(NamedDir, e.Name())); err == nil && ino == self {
			return e.Name(), nil
		}
	}
	return fmt.Sprintf("ns-%d", self), nil
}

func inode(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, fmt.Errorf("stat %s: %w", path, err)
	}
	return st.Ino, nil
}

// Enter moves the calling OS thread into the named namespace. The caller
// must have locked the goroutine to its thread (runtime.LockOSThread) and
// must not unlock it afterwards unless it moves back.
func Enter(name string) error {
	path := name
	if filepath.Base(name) == name {
		path = filepath.Join(NamedDir, name)
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("network namespace %s: %w", name, err)
	}
	defer unix.Close(fd)
	if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("enter network namespace %s: %w", name, err)
	}
	return nil
}

// EnterProcess moves every thread of the process into the named namespace
// at once (syscall.AllThreadsSyscall), so that whatever the process does
// from then on, on any thread, happens there: threads the runtime starts
// later are cloned from threads already inside. Called first thing in
// main, it is as if the process had been started inside the namespace,
// without the second process start of entering on one thread and
// re-executing. In a binary that uses cgo the runtime cannot reach every
// thread, and it fails with an error wrapping errors.ErrUnsupported before
// anything moved.
func EnterProcess(name string) error {
	path := name
	if filepath.Base(name) == name {
		path = filepath.Join(NamedDir, name)
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("network namespace %s: %w", name, err)
	}
	defer unix.Close(fd)
	_, _, errno := syscall.AllThreadsSyscall(unix.SYS_SETNS, uintptr(fd), unix.CLONE_NEWNET, 0)
	switch errno {
	case 0:
		return nil
	case unix.ENOTSUP:
		return fmt.Errorf("enter network namespace %s with every thread: %w", name, errors.ErrUnsupported)
	}
	return fmt.Errorf("enter network namespace %s: %w", name, errno)
}

// Do runs fn on a locked OS thread inside the named namespace and returns
// its error. Goroutines started by fn do not inherit the namespace. If the
// thread cannot be moved back, it is left locked so that the runtime
// discards it instead of reusing it in the wrong namespace.
func Do(name string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("open current network namespace: %w", err)
			return
		}
		defer unix.Close(orig)
		if err := Enter(name); err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		err = fn()
		if serr := unix.Setns(orig, unix.CLONE_NEWNET); serr == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// Exists reports whether a named namespace exists.
func Exists(name string) bool {
	_, err := os.Stat(filepath.Join(NamedDir, name))
	return err == nil
}
