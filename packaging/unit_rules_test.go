package packaging

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
)

// neededCaps is every capability braid needs, and so the only ones the
// unit may grant; TestCapabilities runs braid with the unit's set.
var neededCaps = []string{"CAP_NET_ADMIN", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW"}

// neededFamilies are the socket families braid opens.
var neededFamilies = []string{"AF_INET", "AF_INET6", "AF_NETLINK", "AF_PACKET", "AF_UNIX"}

func truthy(v string) bool {
	switch strings.ToLower(v) {
	case "yes", "true", "on", "1":
		return true
	}
	return false
}

// checkUnit returns every setting of u that would break braid or grant it
// more than it needs.
func checkUnit(u Unit) error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	const s = "Service"
	if u.Get(s, "User") != "root" {
		bad("User=%q: braid runs as root (its capabilities are bounded instead)", u.Get(s, "User"))
	}
	for _, key := range []string{"CapabilityBoundingSet", "AmbientCapabilities"} {
		caps := u.Words(s, key)
		slices.Sort(caps)
		if !slices.Equal(slices.Compact(caps), neededCaps) {
			bad("%s=%s: want exactly %s", key, strings.Join(caps, " "), strings.Join(neededCaps, " "))
		}
	}
	if truthy(u.Get(s, "ProtectKernelTunables")) {
		bad("ProtectKernelTunables=yes: braid writes net sysctls")
	}
	if v := u.Get(s, "ProtectHome"); v != "" && !strings.EqualFold(v, "no") && !strings.EqualFold(v, "false") {
		bad("ProtectHome=%s: file: secrets may live under /home or /root", v)
	}
	if truthy(u.Get(s, "PrivateDevices")) {
		bad("PrivateDevices=yes hides /dev/net/tun")
	}
	if truthy(u.Get(s, "PrivateNetwork")) {
		bad("PrivateNetwork=yes: braid configures the network it runs in")
	}
	if p := u.Get(s, "DevicePolicy"); p == "closed" || p == "strict" {
		if !slices.ContainsFunc(u[s]["DeviceAllow"], func(v string) bool {
			f := strings.Fields(v)
			return len(f) == 2 && f[0] == "/dev/net/tun" && strings.Contains(f[1], "r") && strings.Contains(f[1], "w")
		}) {
			bad("DevicePolicy=%s without DeviceAllow=/dev/net/tun rw", p)
		}
	}
	fams := u.Words(s, "RestrictAddressFamilies")
	if len(fams) > 0 {
		if strings.HasPrefix(fams[0], "~") {
			bad("RestrictAddressFamilies=%s: a deny list; allow %s instead", strings.Join(fams, " "), strings.Join(neededFamilies, " "))
		}
		for _, f := range neededFamilies {
			if !slices.Contains(fams, f) {
				bad("RestrictAddressFamilies lacks %s", f)
			}
		}
	}
	for _, key := range []string{"ExecStart", "ExecStartPre", "ExecReload"} {
		for _, v := range u[s][key] {
			if strings.Contains(v, "--netns") {
				bad("%s=%s: --netns needs CAP_SYS_ADMIN; use NetworkNamespacePath=", key, v)
			}
		}
	}
	if p := u.Get(s, "ProtectSystem"); p == "strict" || p == "full" {
		writable := append(u.Words(s, "ReadWritePaths"), "/var/lib/"+u.Get(s, "StateDirectory"), "/run/"+u.Get(s, "RuntimeDirectory"))
		for _, dir := range []string{"/var/lib/braid", "/run/braid"} {
			if !slices.Contains(writable, dir) {
				bad("ProtectSystem=%s leaves %s read-only", p, dir)
			}
		}
	}
	return errors.Join(errs...)
}

func readUnit(t *testing.T, text string) Unit {
	t.Helper()
	u, err := ParseUnit(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestShippedUnit(t *testing.T) {
	data, err := os.ReadFile("braid.service")
	if err != nil {
		t.Fatal(err)
	}
	if err := checkUnit(readUnit(t, string(data))); err != nil {
		t.Errorf("braid.service:\n%v", err)
	}
}

// TestCheckUnitRejects appends each forbidden setting to the shipped
// unit (a later assignment wins, as in a drop-in) and checks the rules
// catch it.
func TestCheckUnitRejects(t *testing.T) {
	data, err := os.ReadFile("braid.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, add := range []string{
		"User=braid",
		"ProtectKernelTunables=yes",
		"ProtectHome=read-only",
		"ProtectHome=yes",
		"PrivateDevices=yes",
		"PrivateNetwork=true",
		"CapabilityBoundingSet=CAP_SYS_ADMIN",
		"AmbientCapabilities=\nAmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW",
		"DeviceAllow=\nDeviceAllow=/dev/null rw",
		"DeviceAllow=\nDeviceAllow=/dev/net/tun r",
		"RestrictAddressFamilies=\nRestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK",
		"RestrictAddressFamilies=\nRestrictAddressFamilies=~AF_BLUETOOTH",
		"ExecStart=\nExecStart=/usr/bin/braid --netns box run -f /etc/braid/spec.yaml",
		"StateDirectory=",
	} {
		u := readUnit(t, strings.Replace(string(data), "\n[Install]", "\n"+add+"\n\n[Install]", 1))
		if checkUnit(u) == nil {
			t.Errorf("adding %q: not rejected", add)
		}
	}
}
