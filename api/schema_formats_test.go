package api

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
)

// formatSamples are, per format, strings braid accepts, which the
// schema's pattern must match, and strings the pattern must refuse
// (braid refuses them too).
var formatSamples = map[string]struct{ match, refuse []string }{
	"cidr":     {[]string{"192.168.1.0/24", "0.0.0.0/0", "2001:db8::/32", "::/0", "::ffff:192.0.2.0/120"}, []string{"192.168.1.0", "x/24", "192.168.1.0/24 ", "2001:db8::/32/1"}},
	"ifaddr":   {[]string{"192.168.1.1/24", "2001:db8::1/64"}, []string{"192.168.1.1", "x/24"}},
	"ip":       {[]string{"192.0.2.1", "2001:db8::1", "::", "fe80::1%eth0", "::ffff:192.0.2.1"}, []string{"192.0.2.1/32", "example.net", "192.0.2.1:53"}},
	"hostport": {[]string{"192.0.2.1:443", "[2001:db8::1]:443", "vps.example.net:65101", "vps.example.net.:1", "[fe80::1%eth0]:53"}, []string{"192.0.2.1", "2001:db8::1", "vps.example.net", "a:b:c"}},
	"ifname":   {[]string{"eth0", "br-lan.100", "fifteen-bytes-x", "wwan0", "0"}, []string{"sixteen-bytes-xx", "a/b", "a:b", "a b", "a\tb", ""}},
	"name":     {[]string{"sfr", "4g", "isp-2", strings.Repeat("a", 63)}, []string{strings.Repeat("a", 64), "SFR", "isp_2", "isp-", "-isp", "isp.2", ""}},
	"duration": {[]string{"500ms", "1m30s", "2h", "1.5s", ".5s", "+3s", "10µs", "10us", "1h2m3s4ms5us6ns"}, []string{"5", "-1s", "1d", "s", "1 s"}},
	"resolver": {[]string{"192.0.2.53", "192.0.2.53:53", "2001:db8::53", "[2001:db8::53]:53", "fe80::1%eth0"}, []string{"dns.example.net", "dns.example.net:53", "[2001:db8::53]"}},
	"domain":   {[]string{"example.com", "netflix.com", "a-b.c0", "localhost"}, []string{"Example.com", ".example.com", "example.com.", "*.example.com", "a b", ""}},
	"mac":      {[]string{"00:24:d4:aa:bb:cc", "02:00:00:00:00:01"}, []string{"00:24:D4:AA:BB:CC", "00-24-d4-aa-bb-cc", "0024.d4aa.bbcc", "00:24:d4:aa:bb"}},
	"addrport": {[]string{"127.0.0.1:53", "[::1]:53", "[fe80::1%eth0]:53"}, []string{"127.0.0.1", "localhost:53", "::1:53"}},
}

// patternMatchers compiles every format's pattern with Go's regexp and
// with an ECMA-262 engine, as editors run them.
func patternMatchers(t testing.TB) map[string][2]func(string) bool {
	t.Helper()
	m := make(map[string][2]func(string) bool)
	for name, p := range formatPatterns {
		goRE, err := regexp.Compile(p)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		jsRE, err := regexp2.Compile(p, regexp2.ECMAScript)
		if err != nil {
			t.Fatalf("%s (ECMA-262): %v", name, err)
		}
		// A backtracking engine, as editors' are: a pattern that takes
		// this long on a spec's string would freeze the editor.
		jsRE.MatchTimeout = 10 * time.Second
		m[name] = [2]func(string) bool{goRE.MatchString, func(s string) bool {
			ok, err := jsRE.MatchString(s)
			if err != nil {
				panic(fmt.Sprintf("%s on %q: %v", name, s, err))
			}
			return ok
		}}
	}
	return m
}

// TestFormatPatterns checks each format's pattern on the samples, and
// that each sample is judged by braid's own check as the table says for
// those it must match.
func TestFormatPatterns(t *testing.T) {
	m := patternMatchers(t)
	for name := range formats {
		if _, ok := formatSamples[name]; !ok {
			t.Errorf("format %s has no samples in formatSamples", name)
		}
	}
	for name, s := range formatSamples {
		match := m[name]
		for _, in := range s.match {
			if msg := formats[name](in); msg != "" {
				t.Errorf("%s %q: braid refuses it (%s); the sample is wrong", name, in, msg)
			}
			if !match[0](in) || !match[1](in) {
				t.Errorf("%s %q: braid accepts it, the pattern (Go %v, ECMA-262 %v) does not", name, in, match[0](in), match[1](in))
			}
		}
		for _, in := range s.refuse {
			if formats[name](in) == "" {
				t.Errorf("%s %q: braid accepts it; the sample is wrong", name, in)
			}
			if match[0](in) || match[1](in) {
				t.Errorf("%s %q: the pattern (Go %v, ECMA-262 %v) accepts it", name, in, match[0](in), match[1](in))
			}
		}
	}
}

// TestFormatPatternsLinear runs every pattern, with the backtracking
// engine, on long strings made to make an ambiguous pattern backtrack: an
// editor would freeze on them. The matcher panics past its generous
// timeout; a linear pattern takes microseconds.
func TestFormatPatternsLinear(t *testing.T) {
	m := patternMatchers(t)
	for _, unit := range []string{"1", "1:", "a.", "1.", "1s", "[1:", "a-", "%"} {
		in := strings.Repeat(unit, 2000) + "!"
		for _, match := range m {
			match[1](in)
		}
	}
}

// FuzzFormatPatterns checks that the schema never refuses what braid
// accepts: every string a format's check accepts matches its pattern,
// with both engines.
func FuzzFormatPatterns(f *testing.F) {
	for _, s := range formatSamples {
		for _, in := range append(s.match, s.refuse...) {
			f.Add(in)
		}
	}
	m := patternMatchers(f)
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return // a spec is UTF-8: Parse refuses the file
		}
		for name, check := range formats {
			if check(s) != "" {
				continue
			}
			if match := m[name]; !match[0](s) || !match[1](s) {
				t.Errorf("%s %q: braid accepts it, the pattern (Go %v, ECMA-262 %v) does not", name, s, match[0](s), match[1](s))
			}
		}
	})
}
