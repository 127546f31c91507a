// Command braid is a declarative reconciler for routers with several
// Internet uplinks: it diffs a YAML spec against the live kernel, shows the
// plan and converges.
package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/braid-router/braid/internal/netns"
)

// Exit codes shared by every command.
const (
	exitOK      = 0
	exitError   = 1
	exitChanges = 2
)

// exitCode carries a process exit status through cobra.
type exitCode struct {
	code int
	err  error
}

func (e *exitCode) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

func (e *exitCode) Unwrap() error { return e.err }

// netnsEnv marks a process that already re-executed itself inside the
// namespace named by --netns.
const netnsEnv = "BRAID_IN_NETNS"

func main() {
	if err := enterNetns(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "braid:", err)
		os.Exit(exitError)
	}
	stop, err := startProfile()
	if err != nil {
		fmt.Fprintln(os.Stderr, "braid:", err)
		os.Exit(exitError)
	}
	// A CLI run is short: trading memory for less garbage collection makes
	// a pass over thousands of routes faster. The daemon sets it back.
	debug.SetGCPercent(400)
	root := newRootCmd()
	err = root.Execute()
	stop()
	if err == nil {
		os.Exit(exitOK)
	}
	var ec *exitCode
	if errors.As(err, &ec) {
		if ec.err != nil {
			fmt.Fprintln(os.Stderr, "braid:", ec.err)
		}
		os.Exit(ec.code)
	}
	fmt.Fprintln(os.Stderr, "braid:", err)
	os.Exit(exitError)
}

// netnsArg finds the value of a global --netns flag in args.
func netnsArg(args []string) string {
	for i, a := range args {
		if a == "--" {
			break
		}
		if a == "--netns" && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, "--netns="); ok {
			return v
		}
	}
	return ""
}

// enterNetns moves the whole process into the namespace named by --netns
// before anything else runs, as `ip netns exec` does, so that every
// thread, socket, TUN device and /proc/sys write of the process lands in
// that namespace: every thread at once (netns.EnterProcess), or, in a
// binary built with cgo, where that is not possible, setns on a locked
// thread and a re-exec. Either way netnsEnv then names the namespace, for
// the processes braid starts.
func enterNetns(args []string) error {
	name := netnsArg(args[1:])
	if name == "" || os.Getenv(netnsEnv) == name {
		return nil
	}
	if !netns.Exists(name) {
		return fmt.Errorf("--netns %s: no such network namespace in %s", name, netns.NamedDir)
	}
	err := netns.EnterProcess(name)
	if err == nil {
		return os.Setenv(netnsEnv, name)
	}
	if !errors.Is(err, errors.ErrUnsupported) {
		return err
	}
	runtime.LockOSThread()
	if err := netns.Enter(name); err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("--netns: %w", err)
	}
	env := append(slices.Clone(os.Environ()), netnsEnv+"="+name)
	if err := syscall.Exec(exe, args, env); err != nil {
		return fmt.Errorf("--netns %s: re-exec %s: %w", name, exe, err)
	}
	return nil
}

// globals are the flags every command shares.
type globals struct {
	netns   string
	verbose bool
}

func newRootCmd() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "braid",
		Short:         "Turn a box with several Internet uplinks into one fast, resilient connection",
		Long:          "braid diffs a YAML spec against the live kernel, shows the plan, and converges.\nSee README.md for the spec and the commands.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.netns, "netns", "", "run inside this named network namespace (from /run/netns)")
	root.PersistentFlags().BoolVarP(&g.verbose, "verbose", "v", false, "log every change applied")
	root.AddCommand(
		newValidateCmd(),
		newSchemaCmd(),
		newPlanCmd(g),
		newApplyCmd(g),
		newShowCmd(g),
		newDestroyCmd(g),
		newLabCmd(),
		newRunCmd(g),
		newStatusCmd(g),
		newConfirmCmd(g),
		newRevertCmd(g),
		newVersionCmd(),
	)
	return root
}
