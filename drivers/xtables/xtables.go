// Package xtables looks at the legacy iptables tables of the namespace
// (ip_tables, ip6_tables): the rules iptables-legacy writes, which
// nftables does not see and braid's analysis of the other firewalls
// (package foreignfw) cannot follow. braid only reads how many rules they
// hold and their built-in chains' policies, to say that they are there.
//
// The kernel has no netlink interface to x_tables: the tables present are
// listed in /proc/net/ip_tables_names (of the calling thread's namespace)
// and read with getsockopt(IPT_SO_GET_INFO, IPT_SO_GET_ENTRIES) on a raw
// socket, as iptables-legacy itself reads them.
package xtables

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Table is one legacy table with what braid reads of it.
type Table struct {
	// Command is the program that manages it: "iptables" or "ip6tables".
	Command string
	Name    string
	// Rules counts its rules, user chains' included.
	Rules int
	// Policies are the built-in chains' policies that are not ACCEPT
	// ("FORWARD" -> "DROP").
	Policies map[string]string
}

// Matters reports whether the table can drop anything: it has rules, or
// a built-in chain whose policy is not ACCEPT.
func (t Table) Matters() bool { return t.Rules > 0 || len(t.Policies) > 0 }

// String describes the table.
func (t Table) String() string {
	s := fmt.Sprintf("%s-legacy table %s: %d rule(s)", t.Command, t.Name, t.Rules)
	for _, h := range hookNames {
		if p, ok := t.Policies[h]; ok {
			s += fmt.Sprintf(", %s policy %s", h, p)
		}
	}
	return s
}

// Sockopts of ip_tables and ip6_tables.
const (
	soGetInfo    = 64 // IPT_SO_GET_INFO, IP6T_SO_GET_INFO
	soGetEntries = 65 // IPT_SO_GET_ENTRIES, IP6T_SO_GET_ENTRIES
	tableNameLen = 32 // XT_TABLE_MAXNAMELEN
)

// hookNames are the built-in chains, by hook number.
var hookNames = []string{"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"}

// Read lists the legacy tables of the calling thread's namespace, both
// families; none when the kernel has no x_tables.
func Read() ([]Table, error) {
	var out []Table
	for _, f := range []struct {
		cmd, names string
		v6         bool
	}{{"iptables", "ip_tables_names", false}, {"ip6tables", "ip6_tables_names", true}} {
		names, err := tableNames("/proc/thread-self/net/" + f.names)
		if err != nil {
			return nil, err
		}
		for _, name := range names {
			t, err := readTable(name, f.v6)
			if err != nil {
				return nil, fmt.Errorf("read %s-legacy table %s: %w", f.cmd, name, err)
			}
			t.Command = f.cmd
			out = append(out, t)
		}
	}
	return out, nil
}

func tableNames(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if n := strings.TrimSpace(sc.Text()); n != "" {
			out = append(out, n)
		}
	}
	return out, sc.Err()
}

// readTable reads a table's info and entries.
func readTable(name string, v6 bool) (Table, error) {
	if len(name) >= tableNameLen {
		return Table{}, errors.New("table name too long")
	}
	domain, level := unix.AF_INET, unix.IPPROTO_IP
	if v6 {
		domain, level = unix.AF_INET6, unix.IPPROTO_IPV6
	}
	fd, err := unix.Socket(domain, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if err != nil {
		return Table{}, fmt.Errorf("open a raw socket: %w", err)
	}
	defer unix.Close(fd)
	info := make([]byte, infoLen)
	copy(info, name)
	if err := getsockopt(fd, level, soGetInfo, info); err != nil {
		return Table{}, fmt.Errorf("get its info: %w", err)
	}
	gi, err := parseInfo(info)
	if err != nil {
		return Table{}, err
	}
	entries := make([]byte, entriesHeader+int(gi.size))
	copy(entries, name)
	binary.NativeEndian.PutUint32(entries[tableNameLen:], gi.size)
	if err := getsockopt(fd, level, soGetEntries, entries); err != nil {
		return Table{}, fmt.Errorf("get its entries: %w", err)
	}
	t, err := parseEntries(gi, entries[entriesHeader:], v6)
	t.Name = name
	return t, err
}

func getsockopt(fd, level, opt int, b []byte) error {
	n := uint32(len(b))
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt),
		uintptr(unsafe.Pointer(&b[0])), uintptr(unsafe.Pointer(&n)), 0)
	if e != 0 {
		return e
	}
	return nil
}

// Layout of struct ipt_getinfo (ip6t_getinfo is the same): name[32],
// valid_hooks, hook_entry[5], underflow[5], num_entries, size.
const (
	infoLen = tableNameLen + 4 + 4*5 + 4*5 + 4 + 4
	// struct ipt_get_entries: name[32], size, then the entries at the
	// alignment of their 64-bit counters.
	entriesHeader = 40
)

// info is struct ipt_getinfo.
type info struct {
	validHooks uint32
	underflow  [5]uint32
	size       uint32
}

func parseInfo(b []byte) (info, error) {
	if len(b) < infoLen {
		return info{}, errors.New("short table info")
	}
	var gi info
	gi.validHooks = binary.NativeEndian.Uint32(b[32:])
	for i := range gi.underflow {
		gi.underflow[i] = binary.NativeEndian.Uint32(b[56+4*i:])
	}
	gi.size = binary.NativeEndian.Uint32(b[80:])
	if gi.size > 64<<20 {
		return info{}, errors.New("table too large")
	}
	return gi, nil
}

// Offsets in struct ipt_entry and ip6t_entry of target_offset and
// next_offset, and their sizes (where the matches start).
const (
	ip4TargetOffset = 88
	ip4EntryLen     = 112
	ip6TargetOffset = 140
	ip6EntryLen     = 168
	// struct xt_entry_target: target_size, name[29], revision; then the
	// standard target's verdict.
	targetHeader = 32
)

// Verdicts of the standard target (-NF_x - 1).
const (
	verdictDrop   = -1
	verdictAccept = -2
	verdictReturn = -5 // XT_RETURN
)

// parseEntries counts a table's rules and reads its policies from its
// entries (the bytes after struct ipt_get_entries' header).
func parseEntries(gi info, b []byte, v6 bool) (Table, error) {
	toff, elen := ip4TargetOffset, ip4EntryLen
	if v6 {
		toff, elen = ip6TargetOffset, ip6EntryLen
	}
	t := Table{Policies: map[string]string{}}
	policyAt := map[uint32]string{}
	for h, name := range hookNames {
		if gi.validHooks&(1<<h) != 0 {
			policyAt[gi.underflow[h]] = name
		}
	}
	for off := 0; off < len(b); {
		if len(b)-off < elen {
			return Table{}, fmt.Errorf("entry at %d: short", off)
		}
		e := b[off:]
		target := int(binary.NativeEndian.Uint16(e[toff:]))
		next := int(binary.NativeEndian.Uint16(e[toff+2:]))
		if next < elen || next > len(e) || target < elen || target+targetHeader > next {
			return Table{}, fmt.Errorf("entry at %d: malformed", off)
		}
		tg := e[target:next]
		name := string(bytes.TrimRight(tg[2:31], "\x00"))
		verdict := int32(0)
		if name == "" && len(tg) >= targetHeader+4 {
			verdict = int32(binary.NativeEndian.Uint32(tg[targetHeader:]))
		}
		switch hook, ok := policyAt[uint32(off)]; {
		case ok:
			if name != "" || verdict != verdictAccept {
				p := "DROP"
				if name != "" {
					p = name
				} else if verdict != verdictDrop {
					p = fmt.Sprintf("verdict %d", verdict)
				}
				t.Policies[hook] = p
			}
		case name == "ERROR":
			// A user chain's head, or the table's end.
		case name == "" && verdict == verdictReturn && target == elen:
			// A user chain's tail.
		default:
			t.Rules++
		}
		off += next
	}
	return t, nil
}
