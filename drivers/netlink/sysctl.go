package netlink

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/braid-router/braid/reconcile/plan"
)

// sysctlPath maps a dotted sysctl name to its file under root. As in
// sysctl(8), a slash in the dotted name stands for a dot in the path (an
// interface named eth0.100 is net.ipv4.conf.eth0/100.rp_filter).
func (d *Driver) sysctlPath(name string) (string, error) {
	rel := []byte(name)
	for i, c := range rel {
		switch c {
		case '.':
			rel[i] = '/'
		case '/':
			rel[i] = '.'
		}
	}
	for seg := range strings.SplitSeq(string(rel), "/") {
		if seg == "" || seg == "." || seg == ".." {
			return "", fmt.Errorf("sysctl %s: invalid name", name)
		}
	}
	return filepath.Join(d.sysctlRoot, string(rel)), nil
}

// readSysctl returns a sysctl's value with its whitespace normalised (a
// tab-separated pair reads as "a b"). A missing key wraps fs.ErrNotExist.
func (d *Driver) readSysctl(name string) (string, error) {
	p, err := d.sysctlPath(name)
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("sysctl %s: no such key: %w", name, fs.ErrNotExist)
	}
	if err != nil {
		return "", fmt.Errorf("read sysctl %s: %w", name, err)
	}
	return strings.Join(strings.Fields(string(b)), " "), nil
}

func (d *Driver) writeSysctl(name, value string) error {
	p, err := d.sysctlPath(name)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("write sysctl %s: %w", name, err)
	}
	_, err = f.WriteString(value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write sysctl %s = %q: %w", name, value, err)
	}
	return nil
}

// observeSysctls reports every desired or recorded sysctl with its live
// value. A desired sysctl that does not exist is an error; a recorded one
// that no longer exists (its interface is gone) is stale.
func (d *Driver) observeSysctls(want []Sysctl) ([]plan.Observed, []recordKey, error) {
	var out []plan.Observed
	seen := map[string]bool{}
	for _, w := range want {
		if seen[w.Name] {
			continue
		}
		seen[w.Name] = true
		v, err := d.readSysctl(w.Name)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, plan.Observed{Resource: Sysctl{Name: w.Name, Value: v}})
	}
	var stale []recordKey
	for _, name := range d.rec.Keys(KindSysctl) {
		if seen[name] {
			continue
		}
		v, err := d.readSysctl(name)
		if errors.Is(err, fs.ErrNotExist) {
			stale = append(stale, recordKey{KindSysctl, name})
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		out = append(out, plan.Observed{Resource: Sysctl{Name: name, Value: v}})
	}
	return out, stale, nil
}

// applySysctl writes a sysctl, recording its previous value first; a
// delete writes the recorded value back.
func (d *Driver) applySysctl(action plan.Action, s Sysctl) (bool, error) {
	cur, err := d.readSysctl(s.Name)
	if action == plan.Delete {
		if errors.Is(err, fs.ErrNotExist) {
			return false, d.rec.Delete(KindSysctl, s.Name)
		}
		if err != nil {
			return false, err
		}
		var prev string
		ok, err := d.rec.Get(KindSysctl, s.Name, &prev)
		if err != nil {
			return false, err
		}
		wrote := false
		if ok && prev != cur {
			if err := d.writeSysctl(s.Name, prev); err != nil {
				return false, err
			}
			d.wrote()
			wrote = true
		}
		return wrote, d.rec.Delete(KindSysctl, s.Name)
	}
	if err != nil {
		return false, err
	}
	if err := d.rec.PutIfAbsent(KindSysctl, s.Name, cur); err != nil {
		return false, err
	}
	if cur == strings.Join(strings.Fields(s.Value), " ") {
		return false, nil
	}
	if err := d.writeSysctl(s.Name, s.Value); err != nil {
		return false, err
	}
	d.wrote()
	return true, nil
}
