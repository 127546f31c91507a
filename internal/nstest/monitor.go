package nstest

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// Monitor is a running event monitor (`ip monitor all`, `nft monitor`)
// that a test uses to prove what an operation wrote, without sleeping:
// monitors print events in the kernel's order, so everything an operation
// wrote between two marker events of the test's own appears between them.
type Monitor struct {
	out    *SyncBuffer
	poke   func(token string)
	token  func(n int) string
	n      int
	tokens []string
}

// NewMonitor starts the monitor name args... and returns once it shows
// the test's first marker. poke makes one marker event carrying token in
// the monitor's output (adding and deleting a route or a table); token
// builds the n-th marker's text, which must not occur in anything else
// the monitor prints.
func NewMonitor(t testing.TB, poke func(token string), token func(n int) string, name string, args ...string) *Monitor {
	t.Helper()
	m := &Monitor{out: Watch(t, name, args...), poke: poke, token: token}
	m.Mark(t)
	return m
}

// IPMarker is NewMonitor's poke and token for `ip monitor` in namespace
// ns: a route to 198.18.N.0/24 (a benchmarking prefix) in table 250,
// added and deleted.
func IPMarker(t testing.TB, ns string) (poke func(string), token func(int) string) {
	return func(tok string) {
			Run(t, "ip", "-n", ns, "route", "add", "unreachable", tok, "table", "250")
			Run(t, "ip", "-n", ns, "route", "del", "unreachable", tok, "table", "250")
		}, func(n int) string {
			return fmt.Sprintf("198.18.%d.0/24", n%250)
		}
}

// NftMarker is NewMonitor's poke and token for `nft monitor` in namespace
// ns: a table braidmarkN, added and deleted.
func NftMarker(t testing.TB, ns string) (poke func(string), token func(int) string) {
	return func(tok string) {
			Run(t, "ip", "netns", "exec", ns, "nft", "add", "table", "inet", tok)
			Run(t, "ip", "netns", "exec", ns, "nft", "delete", "table", "inet", tok)
		}, func(n int) string {
			return fmt.Sprintf("braidmark%d", n)
		}
}

// Mark makes a new marker event and waits until the monitor shows it; it
// returns the position in the output right after it. A monitor that has
// not started to listen yet misses a marker: it is made again every
// second, for up to a minute.
func (m *Monitor) Mark(t testing.TB) int {
	t.Helper()
	m.n++
	tok := m.token(m.n)
	m.tokens = append(m.tokens, tok)
	deadline := time.Now().Add(time.Minute)
	for next := time.Now(); ; {
		if !time.Now().Before(next) {
			m.poke(tok)
			next = time.Now().Add(time.Second)
		}
		out := m.out.String()
		if i := strings.LastIndex(out, tok); i >= 0 {
			end := strings.IndexByte(out[i:], '\n')
			if end >= 0 {
				// The last line about the marker (its delete).
				return i + end + 1
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the monitor never showed marker %s:\n%s", tok, out)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Since makes a new marker and returns what the monitor printed between
// mark and it: the events of whatever ran in between. Marker lines and
// nft's "# new generation" comments are left out.
func (m *Monitor) Since(t testing.TB, mark int) string {
	t.Helper()
	tok := m.token(m.n + 1)
	end := m.Mark(t)
	out := m.out.String()[mark:end]
	// Up to the line of the first event about the new marker.
	if i := strings.Index(out, tok); i >= 0 {
		out = out[:strings.LastIndexByte(out[:i], '\n')+1]
	}
	var lines []string
next:
	for _, line := range strings.Split(out, "\n") {
		if line == "" || strings.HasPrefix(line, "# ") {
			continue
		}
		for _, tk := range m.tokens {
			if strings.Contains(line, tk) {
				continue next
			}
		}
		lines = append(lines, line)
	}
	return strings.Join(lines, "\n")
}
