package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Status is what a lab looks like right now.
type Status struct {
	// Name is the lab's name.
	Name string `json:"name"`
	// Dir is its run directory.
	Dir string `json:"dir"`
	// Created is when Up built it.
	Created time.Time `json:"created"`
	// Namespaces are the lab's namespaces, in the topology's order.
	Namespaces []NamespaceStatus `json:"namespaces"`
	// Processes are the processes the lab started.
	Processes []ProcessStatus `json:"processes"`
	// Faults are the faults injected on the ISP side of the box's links
	// (see Inject), by ISP.
	Faults []Fault `json:"faults,omitempty"`
	// Delays are the round-trip times added to ISPs' links to the core
	// (see Delay), by ISP.
	Delays []LinkDelay `json:"delays,omitempty"`
}

// NamespaceStatus is one namespace of a lab.
type NamespaceStatus struct {
	// Role is the namespace's role in the lab.
	Role Role `json:"role"`
	// Name is the namespace's name ("<lab>-<role>").
	Name string `json:"name"`
	// Exists is false when the namespace is gone.
	Exists bool `json:"exists"`
	// Links are its interfaces (loopback included).
	Links []LinkStatus `json:"links,omitempty"`
}

// LinkStatus is one interface of a namespace.
type LinkStatus struct {
	// Name is the interface's name.
	Name string `json:"name"`
	// Up is the administrative state.
	Up bool `json:"up"`
	// State is the kernel's operational state (UP, DOWN, LOWERLAYERDOWN,
	// UNKNOWN).
	State string `json:"state"`
	// Addrs are its addresses with prefix lengths, link-local ones
	// included.
	Addrs []string `json:"addrs,omitempty"`
}

// ProcessStatus is one process a lab started.
type ProcessStatus struct {
	// Name is the process's name in the topology.
	Name string `json:"name"`
	// Role and Namespace say where it runs.
	Role      Role   `json:"role"`
	Namespace string `json:"namespace"`
	// PID is its process ID.
	PID int `json:"pid"`
	// Alive is false once it has exited (or its PID is another
	// program's).
	Alive bool `json:"alive"`
	// Args is its command line.
	Args []string `json:"args"`
	// Log is the file that holds its standard output and error.
	Log string `json:"log"`
}

// Status observes the lab: which namespaces exist, their interfaces and
// addresses (from `ip -json addr`), which recorded processes are alive,
// and the faults injected and delays set.
func (l *Lab) Status(ctx context.Context) (*Status, error) {
	st := &Status{Name: l.Name, Dir: l.Dir, Created: l.Created}
	for _, ns := range l.Topology.Namespaces {
		nss := NamespaceStatus{Role: ns.Role, Name: l.NS(ns.Role)}
		if nss.Exists = existingNamespaces(l.Name, []Role{ns.Role}) != nil; nss.Exists {
			links, err := linkStatus(ctx, nss.Name)
			if err != nil {
				return nil, fmt.Errorf("lab %s: %w", l.Name, err)
			}
			nss.Links = links
		}
		st.Namespaces = append(st.Namespaces, nss)
	}
	if existingNamespaces(l.Name, []Role{RoleLNS}) != nil {
		// The test LNS (LNSUp), not part of the topology.
		nss := NamespaceStatus{Role: RoleLNS, Name: l.NS(RoleLNS), Exists: true}
		links, err := linkStatus(ctx, nss.Name)
		if err != nil {
			return nil, fmt.Errorf("lab %s: %w", l.Name, err)
		}
		nss.Links = links
		st.Namespaces = append(st.Namespaces, nss)
	}
	recs, err := readProcs(l.Dir)
	if err != nil {
		return nil, fmt.Errorf("lab %s: %w", l.Name, err)
	}
	if st.Faults, err = l.Faults(); err != nil {
		return nil, err
	}
	if st.Delays, err = l.Delays(); err != nil {
		return nil, err
	}
	for _, rec := range recs {
		st.Processes = append(st.Processes, ProcessStatus{
			Name: rec.Name, Role: rec.Role, Namespace: rec.Namespace, PID: rec.PID,
			Alive: rec.alive(), Args: rec.Args, Log: rec.Log,
		})
	}
	return st, nil
}

// linkStatus reads the interfaces of namespace ns.
func linkStatus(ctx context.Context, ns string) ([]LinkStatus, error) {
	out, err := run(ctx, ns, nil, "ip", "-n", ns, "-json", "addr", "show")
	if err != nil {
		return nil, err
	}
	var links []struct {
		Name     string   `json:"ifname"`
		Flags    []string `json:"flags"`
		State    string   `json:"operstate"`
		AddrInfo []struct {
			Local     string `json:"local"`
			PrefixLen int    `json:"prefixlen"`
		} `json:"addr_info"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil {
		return nil, fmt.Errorf("namespace %s: ip -json addr show: %w", ns, err)
	}
	var res []LinkStatus
	for _, l := range links {
		ls := LinkStatus{Name: l.Name, State: l.State}
		for _, f := range l.Flags {
			ls.Up = ls.Up || f == "UP"
		}
		for _, a := range l.AddrInfo {
			ls.Addrs = append(ls.Addrs, a.Local+"/"+strconv.Itoa(a.PrefixLen))
		}
		res = append(res, ls)
	}
	return res, nil
}
