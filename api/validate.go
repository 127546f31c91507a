package api

import (
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// Limits checked by Validate.
const (
	minMTU     = 68    // RFC 791
	minMTUIPv6 = 1280  // RFC 8200
	maxMTU     = 65535 // what an IP packet can hold
	maxOption  = 255   // bytes in a DHCPv4 option
	maxIfName  = 15    // IFNAMSIZ - 1
	maxName    = 63    // a DNS label
)

// Validate checks a document that is already complete: call SetDefaults
// first on a document built in Go. It checks what the field tags declare
// (required fields, enum values, formats) and the rules that span fields:
// names are unique, references resolve, an interface is claimed once,
// address families agree, numbers are in range. It returns nil or *Errors;
// a document built in Go has no positions, so its errors read "path:
// message".
func Validate(d *Document) error {
	r := &run{tables: make(tables), failed: make(map[string]bool)}
	r.validate(d)
	return r.result()
}

// validate runs every check on d.
func (r *run) validate(d *Document) {
	r.checkTags(reflect.ValueOf(shapeOf(d)).Elem(), "")
	if d.APIVersion != "" && d.APIVersion != APIVersion {
		r.errorf("apiVersion", "unsupported apiVersion %q; want %q", d.APIVersion, APIVersion)
	}
	switch {
	case d.Kind == KindRouter && d.Router != nil:
		r.checkRouter(d.Router)
	case d.Kind == KindPeer && d.Peer != nil:
		r.checkPeer(d.Peer)
	}
}

// checkTags walks v (a struct) and checks what its field tags declare.
func (r *run) checkTags(v reflect.Value, path string) {
	ft := r.tables.of(v.Type())
	for i := range ft.fields {
		f := &ft.fields[i]
		fv := v.Field(f.index)
		fpath := join(path, f.name)
		if f.required && (fv.IsZero() || fv.Kind() == reflect.Slice && fv.Len() == 0) {
			switch {
			case !r.present(fpath, fv):
				r.errorf(path, "missing required field %q", f.name)
				r.failed[fpath] = true
				continue
			case fv.Kind() == reflect.Slice:
				r.errorf(fpath, "want at least one entry")
				continue
			case fv.Kind() == reflect.String || fv.Kind() == reflect.Pointer:
				r.errorf(fpath, "must not be empty")
				continue
			}
		}
		switch fv.Kind() {
		case reflect.String:
			if s := fv.String(); s != "" {
				r.checkEnum(fpath, s, f.enum)
				r.checkFormat(fpath, s, f.format)
			}
		case reflect.Pointer:
			if !fv.IsNil() && fv.Elem().Kind() == reflect.Struct {
				r.checkTags(fv.Elem(), fpath)
			}
		case reflect.Struct:
			r.checkTags(fv, fpath)
		case reflect.Slice:
			if strs, ok := fv.Interface().([]string); ok {
				// A list of 10,000 prefixes: an element's path is built
				// only for a problem to report.
				for j, s := range strs {
					if msg := enumProblem(s, f.enum); msg != "" {
						r.errorf(index(fpath, j), "%s", msg)
					}
					if msg := formatProblem(s, f.format); msg != "" {
						r.errorf(index(fpath, j), "%s", msg)
					}
				}
				continue
			}
			for j := range fv.Len() {
				ev, epath := fv.Index(j), index(fpath, j)
				switch ev.Kind() {
				case reflect.String:
					r.checkEnum(epath, ev.String(), f.enum)
					r.checkFormat(epath, ev.String(), f.format)
				case reflect.Struct:
					r.checkTags(ev, epath)
				}
			}
		}
	}
}

func (r *run) checkEnum(path, s string, enum []string) {
	if msg := enumProblem(s, enum); msg != "" {
		r.errorf(path, "%s", msg)
	}
}

// enumProblem says why s is not one of enum, or "" if it is (or enum is
// empty).
func enumProblem(s string, enum []string) string {
	if len(enum) == 0 {
		return ""
	}
	for _, e := range enum {
		if s == e {
			return ""
		}
	}
	msg := fmt.Sprintf("invalid value %q: want %s", s, oneOf(enum))
	if sg := suggest(s, enum); sg != "" {
		msg += fmt.Sprintf("; did you mean %q?", sg)
	}
	return msg
}

// checkFormat checks s against a format named in a field tag.
func (r *run) checkFormat(path, s, format string) {
	if msg := formatProblem(s, format); msg != "" {
		r.errorf(path, "%s", msg)
	}
}

// formatProblem says why s does not have the format named in a field tag,
// or "" if it does (or there is none).
func formatProblem(s, format string) string {
	if format == "" {
		return ""
	}
	var msg string
	switch format {
	case "cidr":
		msg = checkCIDR(s)
	case "ifaddr":
		msg = checkIfAddr(s)
	case "ip":
		if _, err := netip.ParseAddr(s); err != nil {
			msg = fmt.Sprintf("%q is not an IP address", s)
		}
	case "hostport":
		msg = checkHostPort(s)
	case "ifname":
		msg = checkIfName(s)
	case "name":
		msg = checkName(s)
	case "duration":
		msg = checkDuration(s)
	default:
		panic("api: unknown format " + format)
	}
	return msg
}

// Formats. Each returns "" when s is well formed, else the message.

// checkCIDR: a network prefix with its host bits clear (192.168.1.0/24).
func checkCIDR(s string) string {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return fmt.Sprintf("%q is not a prefix: want ADDRESS/LENGTH, like 192.168.1.0/24", s)
	}
	if m := p.Masked(); m != p {
		return fmt.Sprintf("%q has host bits set; did you mean %q?", s, m.String())
	}
	return ""
}

// checkIfAddr: an interface address with its prefix length (192.168.1.1/24).
func checkIfAddr(s string) string {
	if _, err := netip.ParsePrefix(s); err != nil {
		if _, err := netip.ParseAddr(s); err == nil {
			return fmt.Sprintf("%q has no prefix length: want ADDRESS/LENGTH, like 192.168.1.1/24", s)
		}
		return fmt.Sprintf("%q is not an interface address: want ADDRESS/LENGTH, like 192.168.1.1/24", s)
	}
	return ""
}

// checkHostPort: HOST:PORT, with HOST an IP address or a DNS name, an IPv6
// address in brackets, and PORT 1..65535.
func checkHostPort(s string) string {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		if a, err := netip.ParseAddr(s); err == nil && a.Is6() {
			return fmt.Sprintf("%q has no port: want [ADDRESS]:PORT for IPv6, like [2001:db8::1]:443", s)
		}
		return fmt.Sprintf("%q is not HOST:PORT", s)
	}
	if _, err := netip.ParseAddr(host); err != nil && !isHostname(host) {
		return fmt.Sprintf("%q: %q is neither an IP address nor a host name", s, host)
	}
	if msg := checkPort(port); msg != "" {
		return fmt.Sprintf("%q: %s", s, msg)
	}
	return ""
}

func checkPort(port string) string {
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return fmt.Sprintf("port %q out of range 1..65535", port)
	}
	return ""
}

// isHostname reports whether s is a DNS name: dot-separated labels of
// letters, digits and '-', not starting or ending with '-'.
func isHostname(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > maxName || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range []byte(label) {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// checkIfName: a Linux interface name: 1..15 bytes, no '/', ':' or
// whitespace, not "." or "..".
func checkIfName(s string) string {
	switch {
	case s == "":
		return "interface name is empty"
	case len(s) > maxIfName:
		return fmt.Sprintf("interface name %q is longer than %d bytes", s, maxIfName)
	case s == "." || s == "..":
		return fmt.Sprintf("%q is not an interface name", s)
	case strings.ContainsAny(s, "/:"):
		return fmt.Sprintf("interface name %q contains '/' or ':'", s)
	case strings.IndexFunc(s, func(c rune) bool { return c <= ' ' || c == 0x7f }) >= 0:
		return fmt.Sprintf("interface name %q contains whitespace or a control character", s)
	}
	return ""
}

// checkName: a lowercase DNS label: 1..63 of a-z, 0-9 and '-', not starting
// or ending with '-'.
func checkName(s string) string {
	ok := s != "" && len(s) <= maxName && s[0] != '-' && s[len(s)-1] != '-'
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			ok = false
		}
	}
	if ok {
		return ""
	}
	msg := fmt.Sprintf("invalid name %q: want 1..%d lowercase letters, digits and '-', not starting or ending with '-'", s, maxName)
	if l := strings.ToLower(s); l != s && checkName(l) == "" {
		msg += fmt.Sprintf("; did you mean %q?", l)
	}
	return msg
}

// checkDuration: a positive Go duration (500ms, 2s, 1m30s).
func checkDuration(s string) string {
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Sprintf("invalid duration %q: want a number and a unit, like 500ms or 2s", s)
	}
	if d <= 0 {
		return fmt.Sprintf("duration %q must be positive", s)
	}
	return ""
}

// uniqueNames reports duplicate names in a list of named entries (an
// empty name is the required-field check's business) and returns each
// name's index and the names in order.
func (r *run) uniqueNames(kind, list string, names []string) (map[string]int, []string) {
	byName := make(map[string]int, len(names))
	var ordered []string
	for i, name := range names {
		if name == "" {
			continue
		}
		if j, dup := byName[name]; dup {
			r.errorf(join(index(list, i), "name"), "duplicate %s name %q (also %s[%d])", kind, name, list, j)
			continue
		}
		byName[name] = i
		ordered = append(ordered, name)
	}
	return byName, ordered
}

// checkRouter runs the checks that span fields of a Router spec.
func (r *run) checkRouter(s *RouterSpec) {
	// Names.
	names := make([]string, len(s.Uplinks))
	for i, u := range s.Uplinks {
		names[i] = u.Name
	}
	uplinks, uplinkNames := r.uniqueNames("uplink", "spec.uplinks", names)
	names = make([]string, len(s.Tunnels))
	for i, t := range s.Tunnels {
		names[i] = t.Name
	}
	tunnels, tunnelNames := r.uniqueNames("tunnel", "spec.tunnels", names)
	via := func(path, name string) {
		if _, ok := uplinks[name]; !ok && name != "" {
			r.errorf(path, "%s", unknownRef("uplink", name, uplinkNames))
		}
	}

	// Interfaces are claimed once.
	claimed := make(map[string]string)
	claim := func(path, ifname string) {
		if ifname == "" {
			return
		}
		if by, dup := claimed[ifname]; dup {
			r.errorf(path, "interface %q is already used by %s", ifname, by)
			return
		}
		claimed[ifname] = parent(path)
	}

	if m := s.Management; m != nil {
		for i, p := range m.Probes {
			r.checkProbe(index("spec.management.probes", i), p)
		}
	}

	if l := s.LAN; l != nil {
		claim("spec.lan.interface", l.Interface)
		hasIPv6 := l.IPv6 != nil
		for _, a := range l.Addresses {
			if p, err := netip.ParsePrefix(a); err == nil && p.Addr().Is6() {
				hasIPv6 = true
			}
		}
		r.checkMTU("spec.lan.mtu", l.MTU, hasIPv6)
		if v6 := l.IPv6; v6 != nil {
			if v6.FromTunnel == "" {
				r.errorf("spec.lan.ipv6", "missing required field %q: the tunnel whose delegated prefix the LAN uses", "fromTunnel")
			} else if i, ok := tunnels[v6.FromTunnel]; !ok {
				r.errorf("spec.lan.ipv6.fromTunnel", "%s", unknownRef("tunnel", v6.FromTunnel, tunnelNames))
			} else if t := s.Tunnels[i]; t.L2TP == nil || t.L2TP.IPv6 == nil || t.L2TP.IPv6.DHCPv6 == nil || !t.L2TP.IPv6.DHCPv6.PrefixDelegation {
				r.errorf("spec.lan.ipv6.fromTunnel", "tunnel %q does not ask for a delegated prefix (set spec.tunnels[%d].l2tp.ipv6.dhcpv6.prefixDelegation: true)", v6.FromTunnel, i)
			}
			if v6.Subnet < 0 || v6.Subnet > 0xffff {
				r.errorf("spec.lan.ipv6.subnet", "subnet %d out of range 0..65535", v6.Subnet)
			}
		}
	}

	tables := make(map[int]int)
	for i, u := range s.Uplinks {
		path := index("spec.uplinks", i)
		claim(join(path, "interface"), u.Interface)
		if u.Priority < 0 {
			r.errorf(join(path, "priority"), "priority must be 0 or more, got %d", u.Priority)
		}
		switch j, dup := tables[u.Table]; {
		case u.Table < UplinkTableBase || u.Table > TableMax:
			r.errorf(join(path, "table"), "table %d is outside braid's uplink tables %d..%d", u.Table, UplinkTableBase, TableMax)
		case dup && r.pos != nil && !r.written(join(path, "table")):
			r.errorf(join(path, "table"), "default table %d (%d + the uplink's index) is already used by spec.uplinks[%d]; set table", u.Table, UplinkTableBase, j)
		case dup:
			r.errorf(join(path, "table"), "table %d is already used by spec.uplinks[%d]", u.Table, j)
		default:
			tables[u.Table] = i
		}
		r.checkMTU(join(path, "mtu"), u.MTU, u.IPv6 != nil)
		if u.IPv4 == nil && u.IPv6 == nil && !r.suppressed(join(path, "ipv4")) && !r.suppressed(join(path, "ipv6")) {
			r.errorf(path, "uplink has neither ipv4 nor ipv6")
		}
		if v4 := u.IPv4; v4 != nil {
			p := join(path, "ipv4")
			r.exactlyOne(p, []string{"dhcp", "static"}, v4.DHCP != nil, v4.Static != nil)
			if dh := v4.DHCP; dh != nil {
				r.checkOption(join(p, "dhcp.vendorClass"), dh.VendorClass, 60)
				r.checkOption(join(p, "dhcp.clientID"), dh.ClientID, 61)
				r.checkOption(join(p, "dhcp.hostname"), dh.Hostname, 12)
			}
			r.checkStatic(join(p, "static"), v4.Static, false)
		}
		if v6 := u.IPv6; v6 != nil {
			p := join(path, "ipv6")
			if v6.Static == nil {
				r.errorf(p, "set static")
			}
			r.checkStatic(join(p, "static"), v6.Static, true)
		}
		if h := u.Health; h != nil {
			p := join(path, "health")
			if len(h.Probes) == 0 {
				r.errorf(p, "health needs at least one probe")
			}
			for j, pr := range h.Probes {
				r.checkProbe(index(join(p, "probes"), j), pr)
			}
			if h.FailAfter < 1 {
				r.errorf(join(p, "failAfter"), "failAfter must be 1 or more, got %d", h.FailAfter)
			}
			if h.RecoverAfter < 1 {
				r.errorf(join(p, "recoverAfter"), "recoverAfter must be 1 or more, got %d", h.RecoverAfter)
			}
		}
	}

	for i, rt := range s.Routes {
		path := index("spec.routes", i)
		if len(rt.To) == 0 && len(rt.From) == 0 && !r.suppressed(join(path, "to")) && !r.suppressed(join(path, "from")) {
			r.errorf(path, "route needs to (destination prefixes) or from (source prefixes)")
		}
		via(join(path, "via"), rt.Via)
	}

	if fw := s.Firewall; fw != nil {
		for i, o := range fw.Open {
			r.checkPortNumber(join(index("spec.firewall.open", i), "port"), o.Port)
		}
		for i, f := range fw.Forward {
			path := index("spec.firewall.forward", i)
			r.checkPortNumber(join(path, "port"), f.Port)
			if _, err := netip.ParseAddrPort(f.To); err != nil && checkHostPort(f.To) == "" {
				r.errorf(join(path, "to"), "%q: want a LAN host's ADDRESS:PORT, not a name", f.To)
			}
		}
	}

	for i, t := range s.Tunnels {
		path := join(index("spec.tunnels", i), "l2tp")
		l := t.L2TP
		if l == nil {
			continue
		}
		if l.Server != "" {
			if msg := checkServer(l.Server); msg != "" {
				r.errorf(join(path, "server"), "%s", msg)
			}
		}
		via(join(path, "via"), l.Via)
		r.checkSecret(join(path, "secret"), l.Secret)
		if l.PPP != nil {
			r.checkSecret(join(path, "ppp.password"), l.PPP.Password)
		}
	}

	if a := s.Aggregation; a != nil && a.Peer != nil {
		r.checkSecret("spec.aggregation.peer.key", a.Peer.Key)
	}

	if dns := s.DNS; dns != nil {
		for i, u := range dns.Upstreams {
			path := index("spec.dns.upstreams", i)
			switch name, isUplink := strings.CutPrefix(u, "uplink:"); {
			case u == "peer":
				if s.Aggregation == nil {
					r.errorf(path, "upstream \"peer\" needs spec.aggregation")
				}
			case isUplink:
				via(path, name)
			default:
				_, errAddr := netip.ParseAddr(u)
				_, errAddrPort := netip.ParseAddrPort(u)
				if errAddr == nil || errAddrPort == nil {
					continue
				}
				choices := []string{"peer"}
				for _, n := range uplinkNames {
					choices = append(choices, "uplink:"+n)
				}
				msg := fmt.Sprintf("invalid upstream %q: want peer, uplink:<name>, an IP address or ADDRESS:PORT", u)
				if sg := suggest(u, choices); sg != "" {
					msg += fmt.Sprintf("; did you mean %q?", sg)
				}
				r.errorf(path, "%s", msg)
			}
		}
	}
}

// checkPeer runs the checks that span fields of a Peer spec.
func (r *run) checkPeer(s *PeerSpec) {
	r.checkSecret("spec.key", s.Key)
}

// unknownRef says that name is not one of the known names of a kind of
// object, suggesting the closest.
func unknownRef(kind, name string, known []string) string {
	msg := fmt.Sprintf("unknown %s %q", kind, name)
	if sg := suggest(name, known); sg != "" {
		return msg + fmt.Sprintf("; did you mean %q?", sg)
	}
	if len(known) == 0 {
		return msg + fmt.Sprintf(" (there are no %ss)", kind)
	}
	return msg + fmt.Sprintf(" (%ss: %s)", kind, strings.Join(known, ", "))
}

// exactlyOne checks that exactly one of the fields names, at path, is set.
func (r *run) exactlyOne(path string, names []string, set ...bool) {
	n := 0
	for _, s := range set {
		if s {
			n++
		}
	}
	for _, name := range names {
		if r.suppressed(join(path, name)) {
			return
		}
	}
	switch {
	case n == 0:
		r.errorf(path, "set one of %s", oneOf(names))
	case n > 1:
		r.errorf(path, "set only one of %s", oneOf(names))
	}
}

func (r *run) checkProbe(path string, p Probe) {
	r.exactlyOne(path, []string{"icmp", "tcp"}, p.ICMP != "", p.TCP != "")
}

// checkSecret checks a secret reference: exactly one source, a file given
// as an absolute path, an environment variable with a plausible name.
func (r *run) checkSecret(path string, s *Secret) {
	if s == nil {
		return
	}
	r.exactlyOne(path, []string{"value", "file", "env"}, s.Value != "", s.File != "", s.Env != "")
	if s.File != "" && !filepath.IsAbs(s.File) {
		r.errorf(join(path, "file"), "secret file %q must be an absolute path", s.File)
	}
	if s.Env != "" && !isEnvName(s.Env) {
		r.errorf(join(path, "env"), "invalid environment variable name %q: want letters, digits and '_', not starting with a digit", s.Env)
	}
}

func isEnvName(s string) bool {
	for i, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return s != ""
}

// checkStatic checks a static address and gateway for the family of the
// section they are in.
func (r *run) checkStatic(path string, s *Static, ipv6 bool) {
	if s == nil {
		return
	}
	family, want := "IPv4", func(a netip.Addr) bool { return a.Is4() }
	if ipv6 {
		family, want = "IPv6", func(a netip.Addr) bool { return a.Is6() && !a.Is4In6() }
	}
	if p, err := netip.ParsePrefix(s.Address); err == nil && !want(p.Addr()) {
		r.errorf(join(path, "address"), "%q is not an %s address", s.Address, family)
	}
	gw, err := netip.ParseAddr(s.Gateway)
	if err != nil {
		return
	}
	if !want(gw) {
		r.errorf(join(path, "gateway"), "%q is not an %s address", s.Gateway, family)
		return
	}
	// The gateway must be on-link: inside the address's network, or an
	// IPv6 link-local address. Otherwise the kernel refuses the route at
	// apply time, halfway through.
	p, err := netip.ParsePrefix(s.Address)
	switch {
	case err != nil || !want(p.Addr()):
	case gw == p.Addr():
		r.errorf(join(path, "gateway"), "%s is the uplink's own address", gw)
	case !p.Masked().Contains(gw) && !gw.IsLinkLocalUnicast():
		r.errorf(join(path, "gateway"), "%s is not on-link: it is outside %s, the network of %s", gw, p.Masked(), s.Address)
	}
}

// checkOption checks that a DHCPv4 option's value fits an option: 1..255
// bytes. Empty means unset, unless it was written in the file.
func (r *run) checkOption(path, s string, code int) {
	if s == "" && !r.written(path) {
		return
	}
	if len(s) < 1 || len(s) > maxOption {
		r.errorf(path, "must be 1..%d bytes to fit DHCP option %d, got %d", maxOption, code, len(s))
	}
}

// checkMTU checks an MTU; 0 leaves the link's MTU as it is.
func (r *run) checkMTU(path string, mtu int, ipv6 bool) {
	switch {
	case mtu == 0:
	case mtu < minMTU || mtu > maxMTU:
		r.errorf(path, "MTU %d out of range %d..%d", mtu, minMTU, maxMTU)
	case ipv6 && mtu < minMTUIPv6:
		r.errorf(path, "MTU %d is below %d, the minimum for a link with IPv6", mtu, minMTUIPv6)
	}
}

func (r *run) checkPortNumber(path string, port int) {
	if port < 1 || port > 65535 {
		r.errorf(path, "port %d out of range 1..65535", port)
	}
}

// checkServer checks an L2TP server: HOST or HOST:PORT.
func checkServer(s string) string {
	if _, err := netip.ParseAddr(s); err == nil || isHostname(s) {
		return ""
	}
	if _, _, err := net.SplitHostPort(s); err == nil {
		return checkHostPort(s)
	}
	return fmt.Sprintf("%q is not HOST or HOST:PORT", s)
}
