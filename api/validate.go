package api

import (
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"reflect"
	"slices"
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
				r.checkString(fpath, -1, s, f)
			}
		case reflect.Pointer:
			if !fv.IsNil() && fv.Elem().Kind() == reflect.Struct {
				r.checkTags(fv.Elem(), fpath)
			}
		case reflect.Struct:
			r.checkTags(fv, fpath)
		case reflect.Slice:
			if strs, ok := fv.Interface().([]string); ok {
				for j, s := range strs {
					r.checkString(fpath, j, s, f)
				}
				continue
			}
			for j := range fv.Len() {
				switch ev := fv.Index(j); ev.Kind() {
				case reflect.String:
					r.checkString(fpath, j, ev.String(), f)
				case reflect.Struct:
					r.checkTags(ev, index(fpath, j))
				}
			}
		}
	}
}

// checkString checks a string against the enum and the format of its
// field's tags: the string at path, or element i of the list at path (i
// >= 0), whose path is built only for a problem to report (a list may hold
// 10,000 prefixes).
func (r *run) checkString(path string, i int, s string, f *field) {
	for _, msg := range [...]string{enumProblem(s, f.enum), formatProblem(s, f.format)} {
		if msg == "" {
			continue
		}
		if i >= 0 {
			r.errorf(index(path, i), "%s", msg)
		} else {
			r.errorf(path, "%s", msg)
		}
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

// formats are the checks of the formats a field tag names. Each returns
// "" when s is well formed, else the message.
var formats = map[string]func(s string) string{
	"cidr":     checkCIDR,
	"ifaddr":   checkIfAddr,
	"ip":       checkIP,
	"hostport": checkHostPort,
	"ifname":   checkIfName,
	"name":     checkName,
	"duration": checkDuration,
	"resolver": checkResolver,
	"domain":   checkDomain,
	"mac":      checkMAC,
	"addrport": checkAddrPort,
}

// formatProblem says why s does not have the format named in a field tag,
// or "" if it does (or there is none).
func formatProblem(s, format string) string {
	if format == "" {
		return ""
	}
	check, ok := formats[format]
	if !ok {
		panic("api: unknown format " + format)
	}
	return check(s)
}

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

// checkIP: an IP address.
func checkIP(s string) string {
	if _, err := netip.ParseAddr(s); err != nil {
		return fmt.Sprintf("%q is not an IP address", s)
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
	if _, err := netip.ParseAddr(host); err != nil && !isName(host) {
		return fmt.Sprintf("%q: %q is neither an IP address nor a host name", s, host)
	}
	if msg := checkPort(port); msg != "" {
		return fmt.Sprintf("%q: %s", s, msg)
	}
	return ""
}

// checkPort refuses what is not a port number: digits only (Atoi alone
// takes a sign, "+1"), at most five of them, 1..65535.
func checkPort(port string) string {
	p, err := strconv.Atoi(port)
	if err != nil || len(port) > 5 || strings.Trim(port, "0123456789") != "" || p < 1 || p > 65535 {
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

// checkAddrPort: an IP address and a port, ADDRESS:PORT ([ADDRESS]:PORT
// for IPv6), never a name.
func checkAddrPort(s string) string {
	if _, err := netip.ParseAddrPort(s); err == nil {
		if msg := checkHostPort(s); msg != "" { // port 0
			return msg
		}
		return ""
	}
	if _, err := netip.ParseAddr(s); err == nil {
		return fmt.Sprintf("%q has no port: want ADDRESS:PORT, like 127.0.0.1:53 or [::1]:53", s)
	}
	if host, _, err := net.SplitHostPort(s); err == nil && isName(host) {
		return fmt.Sprintf("%q: %q is a name: want ADDRESS:PORT with an IP address", s, host)
	}
	return fmt.Sprintf("%q is not ADDRESS:PORT, like 127.0.0.1:53 or [::1]:53", s)
}

// checkResolver: a resolver's IP address, with or without a port
// (192.0.2.53, 192.0.2.53:53, 2001:db8::53, [2001:db8::53]:53). A resolver
// is never a name: it would have to be looked up first.
func checkResolver(s string) string {
	if _, err := netip.ParseAddr(s); err == nil {
		return ""
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		if isName(s) {
			return fmt.Sprintf("%q is a name: want the resolver's IP address (ADDRESS or ADDRESS:PORT), which needs no lookup", s)
		}
		return fmt.Sprintf("%q is not ADDRESS or ADDRESS:PORT, like 192.0.2.53 or [2001:db8::53]:53", s)
	}
	if _, err := netip.ParseAddr(host); err != nil {
		if isName(host) {
			return fmt.Sprintf("%q: %q is a name: want the resolver's IP address, which needs no lookup", s, host)
		}
		return fmt.Sprintf("%q: %q is not an IP address", s, host)
	}
	if msg := checkPort(port); msg != "" {
		return fmt.Sprintf("%q: %s", s, msg)
	}
	return ""
}

// checkDomain: a DNS name as braid matches names: lowercase labels of
// letters, digits and '-', without a leading or trailing dot; a name
// stands for itself and every name under it (netflix.com matches
// www.netflix.com). A near miss is answered with the name it was probably
// meant to be.
func checkDomain(s string) string {
	if isDomain(s) {
		return ""
	}
	if _, err := netip.ParseAddr(s); err == nil {
		return fmt.Sprintf("%q is an IP address, not a DNS name", s)
	}
	msg := fmt.Sprintf("invalid DNS name %q: want lowercase labels of letters, digits and '-', separated by dots, like example.com", s)
	fix := strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(s, "*"), "."), "."))
	if fix != s && isDomain(fix) {
		msg += fmt.Sprintf("; did you mean %q?", fix)
	}
	return msg
}

// isDomain reports whether s is a DNS name in the form checkDomain wants.
func isDomain(s string) bool {
	return isName(s) && !strings.HasSuffix(s, ".") && strings.ToLower(s) == s
}

// isName reports whether s is a host name that cannot be mistaken for an
// address: isHostname, and its last label is not all digits (192.0.2.300
// is a mistyped address, not a name).
func isName(s string) bool {
	if !isHostname(s) {
		return false
	}
	s = strings.TrimSuffix(s, ".")
	last := s[strings.LastIndexByte(s, '.')+1:]
	return strings.Trim(last, "0123456789") != ""
}

// checkMAC: an interface's MAC address: six two-digit hex octets in lower
// case separated by colons (as ip link shows them), unicast and not all
// zeros. Upper case, dashes, dots or no separators are answered with the
// form braid wants.
func checkMAC(s string) string {
	b, err := hex.DecodeString(strings.NewReplacer(":", "", "-", "", ".", "").Replace(s))
	if err != nil || len(b) != 6 {
		return fmt.Sprintf("%q is not a MAC address: want six hex octets separated by colons, like 00:24:d4:aa:bb:cc", s)
	}
	switch mac := net.HardwareAddr(b); {
	case mac.String() != s:
		return fmt.Sprintf("%q: want six hex octets in lower case separated by colons; did you mean %q?", s, mac.String())
	case [6]byte(b) == [6]byte{}:
		return fmt.Sprintf("%q is all zeros: not an address a link can have", s)
	case b[0]&1 != 0:
		return fmt.Sprintf("%q is a multicast address (the first octet is odd): a link's address is unicast", s)
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
			if r.pos != nil && !r.written(path) {
				r.errorf(path, "default interface %q (the tunnel's name) is already used by %s; set interface", ifname, by)
				return
			}
			r.errorf(path, "interface %q is already used by %s", ifname, by)
			return
		}
		claimed[ifname] = parent(path)
	}

	r.checkManagement("spec.management", s.Management)

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
			r.checkLANIPv6(s, v6, l.Addresses, tunnels, tunnelNames, uplinks, uplinkNames)
		}
		if l.DHCP != nil {
			r.checkLANDHCP(l)
		}
	}

	tables := make(map[int]int)
	for i, u := range s.Uplinks {
		path := index("spec.uplinks", i)
		claim(join(path, "interface"), u.Interface)
		if u.Priority < 0 {
			r.errorf(join(path, "priority"), "priority must be 0 or more, got %d", u.Priority)
		}
		defaulted := r.pos != nil && !r.written(join(path, "table"))
		switch j, dup := tables[u.Table]; {
		case defaulted && u.Table > UplinkTableMax:
			r.errorf(join(path, "table"), "default table %d (%d + the uplink's index) is past braid's uplink tables %d..%d; set table", u.Table, UplinkTableBase, UplinkTableBase, UplinkTableMax)
		case u.Table >= OwnTableMin && u.Table <= TableMax:
			r.errorf(join(path, "table"), "table %d is reserved for braid's own tables (%d..%d: the proxy, tunnels); uplinks take %d..%d", u.Table, OwnTableMin, TableMax, UplinkTableBase, UplinkTableMax)
		case u.Table < UplinkTableBase || u.Table > UplinkTableMax:
			r.errorf(join(path, "table"), "table %d is outside braid's uplink tables %d..%d", u.Table, UplinkTableBase, UplinkTableMax)
		case dup && defaulted:
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
				r.checkClientID(join(p, "dhcp.clientID"), dh.ClientID)
				r.checkOption(join(p, "dhcp.hostname"), dh.Hostname, 12)
			}
			r.checkStatic(join(p, "static"), v4.Static, false)
		}
		if v6 := u.IPv6; v6 != nil {
			p := join(path, "ipv6")
			r.exactlyOne(p, []string{"static", "ra"}, v6.Static != nil, v6.RA != nil)
			r.checkStatic(join(p, "static"), v6.Static, true)
		}
		if h := u.Health; h != nil {
			p := join(path, "health")
			if len(h.Probes) == 0 {
				r.errorf(p, "health needs at least one probe")
			}
			for j, pr := range h.Probes {
				r.checkProbe(index(join(p, "probes"), j), pr, true)
			}
			r.checkTimeout(p, h)
			if h.FailAfter < 1 {
				r.errorf(join(p, "failAfter"), "failAfter must be 1 or more, got %d", h.FailAfter)
			}
			if h.RecoverAfter < 1 {
				r.errorf(join(p, "recoverAfter"), "recoverAfter must be 1 or more, got %d", h.RecoverAfter)
			}
		}
	}

	type routedBy struct {
		via   string
		entry int
	}
	domains := make(map[string]routedBy)
	for i, rt := range s.Routes {
		path := index("spec.routes", i)
		via(join(path, "via"), rt.Via)
		switch byPrefix := len(rt.To) > 0 || len(rt.From) > 0; {
		case byPrefix && len(rt.Domains) > 0:
			r.errorf(join(path, "domains"), "domains cannot share an entry with to or from: give them an entry of their own")
			continue
		case !byPrefix && len(rt.Domains) == 0 && !r.suppressed(join(path, "to")) && !r.suppressed(join(path, "from")) && !r.suppressed(join(path, "domains")):
			r.errorf(path, "route needs to (destination prefixes), from (source prefixes) or domains (DNS names)")
		}
		if rt.Via == "" {
			continue
		}
		for j, d := range rt.Domains {
			switch by, dup := domains[d]; {
			case !dup:
				domains[d] = routedBy{rt.Via, i}
			case by.via != rt.Via:
				r.errorf(index(join(path, "domains"), j), "domain %q already leaves by %s (spec.routes[%d])", d, by.via, by.entry)
			}
		}
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
		tpath := index("spec.tunnels", i)
		if i == MaxTunnels {
			r.errorf(tpath, "braid runs at most %d tunnels (each takes one of its tables %d..%d, after the proxy's %d)", MaxTunnels, OwnTableMin+1, TableMax, OwnTableMin)
		}
		if t.Interface == "" && len(t.Name) > maxIfName {
			r.errorf(join(tpath, "interface"), "the tunnel's name %q is longer than %d bytes, too long for its interface: set interface", t.Name, maxIfName)
		}
		if j := tunnels[t.Name]; j == i || r.pos == nil || r.written(join(tpath, "interface")) {
			// A defaulted interface of a duplicate tunnel is the
			// duplicate name's problem, reported once.
			claim(join(tpath, "interface"), t.Interface)
		}
		path := join(tpath, "l2tp")
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
			var via *Uplink
			if j, ok := uplinks[l.Via]; ok {
				via = &s.Uplinks[j]
			}
			r.checkUsername(join(path, "ppp.username"), l.PPP.Username, via)
			if l.PPP.KeepaliveFailures < 1 {
				r.errorf(join(path, "ppp.keepaliveFailures"), "keepaliveFailures must be 1 or more, got %d", l.PPP.KeepaliveFailures)
			}
		}
	}

	if a := s.Aggregation; a != nil && a.Peer != nil {
		r.checkSecret("spec.aggregation.peer.key", a.Peer.Key)
	}

	if dns := s.DNS; dns != nil {
		r.checkDNS(s, dns, uplinks, uplinkNames)
	}
}

// checkDNS checks the resolver's section: where it listens, its upstreams
// and what they need, and the AAAA policy.
func (r *run) checkDNS(s *RouterSpec, dns *DNS, uplinks map[string]int, uplinkNames []string) {
	const path = "spec.dns"
	for i, l := range dns.Listen {
		p := index(join(path, "listen"), i)
		if l == "lan" {
			if s.LAN == nil {
				r.errorf(p, "lan listens on the LAN addresses braid holds, and there is no spec.lan")
			}
			continue
		}
		a, err := netip.ParseAddr(l)
		if err != nil {
			msg := fmt.Sprintf("%q is neither an IP address nor lan (the LAN addresses braid holds)", l)
			if pfx, err := netip.ParsePrefix(l); err == nil {
				msg += fmt.Sprintf("; did you mean %q?", pfx.Addr().String())
			} else if sg := suggest(l, []string{"lan"}); sg != "" {
				msg += fmt.Sprintf("; did you mean %q?", sg)
			}
			r.errorf(p, "%s", msg)
			continue
		}
		for _, u := range s.Uplinks {
			for _, st := range []*Static{staticOf(u.IPv4), staticOf6(u.IPv6)} {
				if st == nil {
					continue
				}
				if up, err := netip.ParsePrefix(st.Address); err == nil && up.Addr() == a {
					r.errorf(p, "%s is uplink %s's address: braid's resolver never listens on the WAN side; listen on the LAN (lan or a LAN address)", l, u.Name)
				}
			}
		}
	}
	// The WAN side never reaches the resolver: braid's input chain drops
	// what arrives on the uplinks and the tunnels, unless firewall.open
	// opens it.
	if fw := s.Firewall; fw != nil {
		for i, o := range fw.Open {
			if o.Port == 53 {
				r.errorf(join(index("spec.firewall.open", i), "port"), "port 53 is braid's resolver (spec.dns), which the WAN side must never reach: an open resolver on the Internet is abused for amplification attacks; remove this entry")
			}
		}
	}
	// intercept needs no listen address: the resolver's transparent
	// sockets answer each intercepted query from the address it was sent
	// to.
	if dns.Intercept && s.LAN == nil {
		r.errorf(join(path, "intercept"), "intercept redirects the LAN's DNS to braid's resolver, and there is no spec.lan")
	}

	if len(dns.Upstreams) == 0 && !slices.ContainsFunc(s.Uplinks, func(u Uplink) bool { return learnsResolvers(&u) }) && !r.suppressed("spec.uplinks") {
		r.errorf(path, "no upstreams, and no uplink learns resolvers (by ipv4.dhcp or ipv6.ra) to fall back on: braid's resolver would have nothing to ask; add upstreams")
	}
	onlyPeer := len(dns.Upstreams) > 0
	for i, u := range dns.Upstreams {
		p := index(join(path, "upstreams"), i)
		if u != "peer" {
			onlyPeer = false
		}
		switch name, isUplink := strings.CutPrefix(u, "uplink:"); {
		case u == "peer":
			switch a := s.Aggregation; {
			case a == nil:
				r.errorf(p, "upstream \"peer\" needs spec.aggregation")
			case a.Peer != nil && a.Peer.DNS == "" && !r.suppressed("spec.aggregation.peer"):
				r.errorf(p, "upstream \"peer\" needs spec.aggregation.peer.dns: the resolver the peer asks")
			}
		case isUplink:
			j, ok := uplinks[name]
			if !ok {
				r.errorf(p, "%s", unknownRef("uplink", name, uplinkNames))
				continue
			}
			if up := s.Uplinks[j]; !learnsResolvers(&up) {
				r.errorf(p, "uplink %q learns no resolvers: it has neither DHCP (ipv4.dhcp) nor router advertisements (ipv6.ra); write the resolver's address instead", name)
			}
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
			r.errorf(p, "%s", msg)
		}
	}
	if a := s.Aggregation; onlyPeer && a != nil && a.Peer != nil {
		if host, _, err := net.SplitHostPort(a.Peer.Address); err == nil && isName(host) {
			r.errorf(join(path, "upstreams"), "the peer's address %q is a name, and the peer is the only upstream: braid never resolves the peer's address through the peer (it has to reach the peer first), so add an upstream that does not need it (uplink:NAME or an address), or write the peer's address as an IP address", a.Peer.Address)
		}
	}

	if len(dns.FilterAAAA) > 0 && dns.AAAA == "filter" {
		r.errorf(join(path, "filterAAAA"), "aaaa: filter already filters every AAAA answer; filterAAAA filters only these names, with aaaa: keep")
	}
}

// staticOf and staticOf6 return an uplink family's static addressing, or
// nil.
func staticOf(v4 *UplinkIPv4) *Static {
	if v4 == nil {
		return nil
	}
	return v4.Static
}

func staticOf6(v6 *UplinkIPv6) *Static {
	if v6 == nil {
		return nil
	}
	return v6.Static
}

// learnsResolvers reports whether an uplink learns resolvers from its
// network: by DHCP or from router advertisements.
func learnsResolvers(u *Uplink) bool {
	return u.IPv4 != nil && u.IPv4.DHCP != nil || u.IPv6 != nil && u.IPv6.RA != nil
}

// checkLANIPv6 checks where the LAN's IPv6 prefixes come from: at most
// one delegated prefix, from a tunnel or an uplink that asks for one, and
// something to do.
func (r *run) checkLANIPv6(s *RouterSpec, v6 *LANIPv6, addresses []string, tunnels map[string]int, tunnelNames []string, uplinks map[string]int, uplinkNames []string) {
	const path = "spec.lan.ipv6"
	switch {
	case v6.FromTunnel != "" && v6.FromUplink != "":
		r.errorf(path, "set only one of fromTunnel or fromUplink: the LAN takes one delegated prefix")
	case v6.FromTunnel != "":
		if i, ok := tunnels[v6.FromTunnel]; !ok {
			r.errorf(join(path, "fromTunnel"), "%s", unknownRef("tunnel", v6.FromTunnel, tunnelNames))
		} else if t := s.Tunnels[i]; t.L2TP == nil || t.L2TP.IPv6 == nil || t.L2TP.IPv6.DHCPv6 == nil || !t.L2TP.IPv6.DHCPv6.PrefixDelegation {
			r.errorf(join(path, "fromTunnel"), "tunnel %q does not ask for a delegated prefix (set spec.tunnels[%d].l2tp.ipv6.dhcpv6.prefixDelegation: true)", v6.FromTunnel, i)
		}
	case v6.FromUplink != "":
		if i, ok := uplinks[v6.FromUplink]; !ok {
			r.errorf(join(path, "fromUplink"), "%s", unknownRef("uplink", v6.FromUplink, uplinkNames))
		} else if u := s.Uplinks[i]; u.IPv6 == nil || u.IPv6.RA == nil || u.IPv6.RA.DHCPv6 == nil || !u.IPv6.RA.DHCPv6.PrefixDelegation {
			r.errorf(join(path, "fromUplink"), "uplink %q does not ask for a delegated prefix (set spec.uplinks[%d].ipv6.ra.dhcpv6.prefixDelegation: true)", v6.FromUplink, i)
		}
	default:
		if v6.Subnet != 0 || r.written(join(path, "subnet")) {
			r.errorf(join(path, "subnet"), "subnet picks a /64 of a delegated prefix: set fromTunnel or fromUplink")
		}
		if !v6.Advertise {
			r.errorf(path, "nothing to do: set fromTunnel or fromUplink (a /64 of a delegated prefix), or advertise (router advertisements for the IPv6 /64s of spec.lan.addresses)")
		} else if !hasIPv6Slash64(addresses) {
			r.errorf(join(path, "advertise"), "advertise alone announces the IPv6 /64s of spec.lan.addresses, and it has none: add one, or set fromTunnel or fromUplink")
		}
	}
	if v6.Subnet < 0 || v6.Subnet > 0xffff {
		r.errorf(join(path, "subnet"), "subnet %d out of range 0..65535", v6.Subnet)
	}
}

// hasIPv6Slash64 reports whether addresses hold an IPv6 address in a /64,
// a prefix SLAAC can use.
func hasIPv6Slash64(addresses []string) bool {
	for _, a := range addresses {
		if p, err := netip.ParsePrefix(a); err == nil && p.Addr().Is6() && !p.Addr().Is4In6() && p.Bits() == 64 {
			return true
		}
	}
	return false
}

// checkPeer runs the checks that span fields of a Peer spec.
func (r *run) checkPeer(s *PeerSpec) {
	r.checkSecret("spec.key", s.Key)
	r.checkManagement("spec.management", s.Management)
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

// checkManagement checks a router's or a peer's management section.
func (r *run) checkManagement(path string, m *Management) {
	if m == nil {
		return
	}
	for i, p := range m.Probes {
		r.checkProbe(index(join(path, "probes"), i), p, false)
	}
}

// checkProbe checks one probe, of an uplink's health when health is set.
// DNS probes are allowed only there: management probes decide whether a
// revision is reverted, and are ICMP or TCP.
func (r *run) checkProbe(path string, p Probe, health bool) {
	switch {
	case health:
		r.exactlyOne(path, []string{"icmp", "tcp", "dns"}, p.ICMP != "", p.TCP != "", p.DNS != "")
	case p.DNS != "":
		r.errorf(join(path, "dns"), "dns probes are for uplinks' health; management probes are icmp or tcp")
	default:
		r.exactlyOne(path, []string{"icmp", "tcp"}, p.ICMP != "", p.TCP != "")
	}
	switch name := join(path, "name"); {
	case p.DNS != "" && p.Name == "" && r.written(name):
		r.errorf(name, "must not be empty")
	case p.DNS != "" && p.Name == "":
		r.errorf(path, "missing required field %q: the name a dns probe asks for", "name")
	case p.DNS == "" && p.Name != "":
		r.errorf(name, "name is what a dns probe asks for; without dns it has no use")
	}
}

// checkTimeout checks that a health round's timeout fits in its interval.
func (r *run) checkTimeout(path string, h *Health) {
	interval, err1 := time.ParseDuration(h.Interval)
	timeout, err2 := time.ParseDuration(h.Timeout)
	if err1 != nil || err2 != nil || interval <= 0 || timeout <= interval {
		return
	}
	of := "interval " + h.Interval
	if r.pos != nil && !r.written(join(path, "interval")) {
		of = "the default interval " + h.Interval
	}
	r.errorf(join(path, "timeout"), "timeout %s is longer than %s: a round must be over before the next one starts, or a late answer would count for the wrong round", h.Timeout, of)
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

// usernamePlaceholders are what a PPP username may hold in braces.
var usernamePlaceholders = []string{"ipv4", "mac", "MAC"}

// checkUsername checks the placeholders of a PPP username: {ipv4}, {mac}
// and {MAC}, filled in from via, the uplink the tunnel leaves by (nil if
// it is unknown).
func (r *run) checkUsername(path, s string, via *Uplink) {
	usesIPv4 := false
	for rest := s; ; {
		open := strings.IndexByte(rest, '{')
		if open < 0 {
			break
		}
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			r.errorf(path, "%q has a { without its }: placeholders are {ipv4}, {mac} and {MAC}", s)
			return
		}
		name := rest[open+1 : open+end]
		rest = rest[open+end+1:]
		switch name {
		case "ipv4":
			usesIPv4 = true
		case "mac", "MAC":
		default:
			msg := fmt.Sprintf("unknown placeholder {%s}: want {ipv4} (the uplink's current IPv4 address), {mac} or {MAC} (its MAC address without colons, lower or upper case)", name)
			if sg := suggest(name, usernamePlaceholders); sg != "" {
				msg += fmt.Sprintf("; did you mean {%s}?", sg)
			}
			r.errorf(path, "%s", msg)
		}
	}
	if usesIPv4 && via != nil && via.IPv4 == nil {
		r.errorf(path, "{ipv4} is the IPv4 address of uplink %q, which has none", via.Name)
	}
}

// checkClientID checks DHCPv4 option 61 as written: hex octets separated
// by colons, 2..255 of them (RFC 2132: a type octet, then at least one of
// the identifier). Empty means unset (type 1 and the link's MAC), unless
// it was written in the file.
func (r *run) checkClientID(path, s string) {
	if s == "" && !r.written(path) {
		return
	}
	if s == "" {
		r.errorf(path, "must not be empty: want hex octets separated by colons, or no clientID for type 1 and the uplink's MAC")
		return
	}
	octets := strings.Split(s, ":")
	for _, o := range octets {
		if _, err := hex.DecodeString(o); err != nil || len(o) != 2 {
			r.errorf(path, "%q is not hex octets separated by colons, like 01:00:24:d4:aa:bb:cc (a type octet, 01 for Ethernet, then the identifier)", s)
			return
		}
	}
	if n := len(octets); n < 2 || n > maxOption {
		r.errorf(path, "must be 2..%d octets to fit DHCP option 61 (a type octet, then the identifier), got %d", maxOption, n)
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
	if _, err := netip.ParseAddr(s); err == nil || isName(s) {
		return ""
	}
	if _, _, err := net.SplitHostPort(s); err == nil {
		return checkHostPort(s)
	}
	return fmt.Sprintf("%q is not HOST or HOST:PORT", s)
}

// minLeaseTime is the shortest lease the LAN's DHCP server hands out:
// shorter ones keep hosts renewing every few seconds.
const minLeaseTime = time.Minute

// DHCPSubnet returns the box's address on the LAN subnet that holds the
// first address of lan.dhcp.range (192.168.1.1/24), and false when the
// LAN has no DHCP server or no IPv4 subnet of lan.addresses holds it.
func DHCPSubnet(l *LAN) (netip.Prefix, bool) {
	if l == nil || l.DHCP == nil || len(l.DHCP.Range) == 0 {
		return netip.Prefix{}, false
	}
	first, err := netip.ParseAddr(l.DHCP.Range[0])
	if err != nil || !first.Is4() {
		return netip.Prefix{}, false
	}
	for _, a := range l.Addresses {
		if p, err := netip.ParsePrefix(a); err == nil && p.Addr().Is4() && p.Contains(first) {
			return p, true
		}
	}
	return netip.Prefix{}, false
}

// checkLANDHCP checks the LAN's DHCP server: a range [FIRST, LAST] in
// one IPv4 subnet of lan.addresses, without the box's addresses and the
// subnet's network and broadcast addresses; static leases in that subnet,
// each MAC and address once; a lease time of at least a minute.
func (r *run) checkLANDHCP(l *LAN) {
	const path = "spec.lan.dhcp"
	d := l.DHCP
	if lt, err := time.ParseDuration(d.LeaseTime); err == nil && lt > 0 && lt < minLeaseTime {
		r.errorf(join(path, "leaseTime"), "lease time %s is shorter than %s: hosts would renew every few seconds", d.LeaseTime, minLeaseTime)
	}
	var box []netip.Addr
	for _, a := range l.Addresses {
		if p, err := netip.ParsePrefix(a); err == nil && p.Addr().Is4() {
			box = append(box, p.Addr())
		}
	}
	rpath := join(path, "range")
	if len(d.Range) == 0 {
		return // the required-field check's business
	}
	if len(d.Range) != 2 {
		r.errorf(rpath, "want two addresses, [FIRST, LAST], got %d", len(d.Range))
		return
	}
	var ends [2]netip.Addr
	for i, s := range d.Range {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return // the format check reported it
		}
		if !a.Is4() {
			r.errorf(index(rpath, i), "%q is not an IPv4 address: the DHCP server leases IPv4 addresses", s)
			return
		}
		ends[i] = a
	}
	subnet, ok := DHCPSubnet(l)
	if !ok {
		r.errorf(index(rpath, 0), "%s is in no IPv4 subnet of spec.lan.addresses (%s): the range must be on the LAN", ends[0], strings.Join(l.Addresses, ", "))
		return
	}
	net4 := subnet.Masked()
	if !net4.Contains(ends[1]) {
		r.errorf(index(rpath, 1), "%s is not in %s, the subnet of the range's first address: the range lies inside one subnet", ends[1], net4)
		return
	}
	if ends[1].Less(ends[0]) {
		r.errorf(rpath, "the range ends (%s) before it starts (%s): want [FIRST, LAST]", ends[1], ends[0])
		return
	}
	network, broadcast := net4.Addr(), lastAddr(net4)
	reserved := func(a netip.Addr) string {
		switch {
		case net4.Bits() < 31 && a == network:
			return "the network address of " + net4.String()
		case net4.Bits() < 31 && a == broadcast:
			return "the broadcast address of " + net4.String()
		}
		for _, b := range box {
			if a == b {
				return "the box's own address (spec.lan.addresses)"
			}
		}
		return ""
	}
	inRange := func(a netip.Addr) bool { return !a.Less(ends[0]) && !ends[1].Less(a) }
	for _, a := range append([]netip.Addr{network, broadcast}, box...) {
		if msg := reserved(a); msg != "" && inRange(a) {
			r.errorf(rpath, "the range %s-%s holds %s, %s: leave it out", ends[0], ends[1], a, msg)
		}
	}
	macs := make(map[string]int)
	addrs := make(map[netip.Addr]int)
	for i, st := range d.Static {
		p := index(join(path, "static"), i)
		if st.MAC != "" {
			if j, dup := macs[st.MAC]; dup {
				r.errorf(join(p, "mac"), "duplicate MAC %s (also %s.static[%d]): a host has one static lease", st.MAC, path, j)
			} else {
				macs[st.MAC] = i
			}
		}
		if st.Hostname != "" && !isHostname(st.Hostname) {
			r.errorf(join(p, "hostname"), "invalid hostname %q: want letters, digits and '-' in dot-separated labels", st.Hostname)
		}
		a, err := netip.ParseAddr(st.Address)
		if err != nil {
			continue // the format check reported it
		}
		switch {
		case !net4.Contains(a):
			r.errorf(join(p, "address"), "%s is not in %s, the subnet of spec.lan.dhcp.range", a, net4)
			continue
		case reserved(a) != "":
			r.errorf(join(p, "address"), "%s is %s: a host cannot have it", a, reserved(a))
			continue
		}
		if j, dup := addrs[a]; dup {
			r.errorf(join(p, "address"), "duplicate address %s (also %s.static[%d]): two hosts cannot share it", a, path, j)
			continue
		}
		addrs[a] = i
	}
}

// lastAddr is the last address of p (its broadcast address, for IPv4).
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1 // a shift by 32 is 0: all ones
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v |= host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
