package tunnel

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/braid-router/braid/api"
	"github.com/braid-router/braid/sessions/l2tp"
	"github.com/braid-router/braid/sessions/ppp"
	"strings"
	"testing"
)

// The login template is filled in from the uplink as the API pins it:
// {ipv4} its address, {mac} and {MAC} its MAC without colons.
func TestExpandUsername(t *testing.T) {
	ip := netip.MustParseAddr("203.0.113.7")
	mac := "00:24:d4:aa:bb:cc"
	for _, tt := range []struct {
		template string
		ipv4     netip.Addr
		mac      string
		want     string
		err      string
	}{
		{template: "dhcp/{ipv4}@{mac}", ipv4: ip, mac: mac, want: "dhcp/203.0.113.7@0024d4aabbcc"},
		{template: "{MAC}-{ipv4}", ipv4: ip, mac: mac, want: "0024D4AABBCC-203.0.113.7"},
		{template: "plain", want: "plain"},
		{template: "a{mac}b{mac}", mac: mac, want: "a0024d4aabbccb0024d4aabbcc"},
		{template: "dhcp/{ipv4}", err: "no IPv4 address yet"},
		{template: "dhcp/{ipv4}", ipv4: netip.MustParseAddr("2001:db8::1"), err: "no IPv4 address yet"},
		{template: "x{mac}", err: "MAC address is not known"},
		{template: "x{mac}", mac: "nonsense", err: "MAC address is not known"},
		{template: "x{ip}", err: "unknown placeholder {ip}"},
		{template: "x{ipv4", ipv4: ip, err: "without its }"},
	} {
		got, err := ExpandUsername(tt.template, tt.ipv4, tt.mac)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: %q, %v; want an error saying %q", tt.template, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%q: %q, %v; want %q", tt.template, got, err, tt.want)
		}
	}
}

func TestServerAddr(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.10":           "192.0.2.10:1701",
		"192.0.2.10:1702":      "192.0.2.10:1702",
		"lns.example.net":      "lns.example.net:1701",
		"lns.example.net:1701": "lns.example.net:1701",
	} {
		if got := ServerAddr(in); got != want {
			t.Errorf("ServerAddr(%q) = %q, want %q", in, got, want)
		}
	}
}

// Secrets never show in a configuration's fields: references only.
func TestConfigFieldsHideSecrets(t *testing.T) {
	cfg := Config{Tunnel: "sixpe", Username: "dhcp/{ipv4}@{mac}", Local: netip.MustParseAddr("10.101.0.2"), MAC: "00:24:d4:aa:bb:cc",
		Secret: &api.Secret{Value: "shared-6pe"}, Password: &api.Secret{Value: "hunter2"}}
	var s string
	for _, f := range cfg.Fields() {
		s += f.Name + "=" + f.Value + " "
	}
	if !strings.Contains(s, "username=dhcp/10.101.0.2@0024d4aabbcc") || !strings.Contains(s, "password=(sensitive)") {
		t.Errorf("fields %s", s)
	}
	if strings.Contains(s, "shared-6pe") || strings.Contains(s, "hunter2") {
		t.Errorf("a secret in the fields: %s", s)
	}
	if len(cfg.Secrets()) != 2 {
		t.Errorf("secrets %v, want the tunnel secret and the password", cfg.Secrets())
	}
}

// The status words are said once, whatever the layers below said.
func TestDescribe(t *testing.T) {
	for _, tt := range []struct {
		err, is error
	}{
		{fmt.Errorf("l2tp: tunnel to 10.77.1.2:1701: %w: the LNS's challenge response does not match", l2tp.ErrAuth), ErrTunnelAuth},
		{fmt.Errorf("%w (CHAP-MD5): \"Access denied\"", ppp.ErrAuthRefused), ErrPPPAuth},
	} {
		got := describe(tt.err)
		if !errors.Is(got, tt.is) || !errors.Is(got, tt.err) {
			t.Errorf("%v: not %v", got, tt.is)
		}
		if strings.Count(got.Error(), tt.is.Error()) != 1 {
			t.Errorf("%q does not say %q once", got, tt.is)
		}
	}
	if err := errors.New("no answer"); describe(err) != err {
		t.Error("another error is reworded")
	}
}
