package api

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// What can catch a malformed spec before braid does.
const (
	// schemaRejects: the JSON Schema rejects the file (an editor flags it
	// as it is typed).
	schemaRejects = "the schema rejects it"
	// braidOnly: the file is well-formed YAML the schema accepts; only
	// braid finds the problem: a rule spanning fields, a number's range,
	// or a whole-file guard the YAML stays readable under.
	braidOnly = "only braid can"
	// notYAML: the file is not one readable YAML document: the editor's
	// YAML parser flags it, before any schema applies.
	notYAML = "not YAML"
)

// fixtureClasses classifies every testdata/errors fixture, with why.
var fixtureClasses = map[string]struct{ class, why string }{
	"alias-bomb":                  {notYAML, "whole-file guard: aliases expand past the budget"},
	"api-version":                 {schemaRejects, "apiVersion is a const"},
	"binary":                      {notYAML, "whole-file guard: a NUL byte"},
	"comments-only":               {schemaRejects, "the document is null, not an object"},
	"dhcp-client-id":              {braidOnly, "clientID's hex octets are checked by braid, not a tag format"},
	"dhcp-client-id-long":         {braidOnly, "clientID's length"},
	"dhcp-options":                {braidOnly, "DHCP options' byte lengths"},
	"lan-dhcp-range-ipv6":         {braidOnly, "the range's addresses are IPv4 only: braid's check, the format is any address"},
	"lan-dhcp-range-outside":      {braidOnly, "the range inside a subnet of lan.addresses: a cross-field rule"},
	"lan-dhcp-range-reversed":     {braidOnly, "the range's order"},
	"lan-dhcp-range-shape":        {braidOnly, "the range's two addresses: no item count in the schema"},
	"lan-dhcp-range-subnet":       {braidOnly, "both ends in one subnet: a cross-field rule"},
	"lan-dhcp-range":              {braidOnly, "the network and broadcast addresses out of the range: a cross-field rule"},
	"lan-dhcp-static":             {schemaRejects, "a static lease requires its address, and a MAC has a pattern"},
	"dns-nothing-to-ask":          {braidOnly, "no upstreams and no uplink that learns resolvers: a cross-field rule"},
	"dns-wan":                     {braidOnly, "port 53 open, or an uplink's address in listen: cross-field rules"},
	"dns":                         {schemaRejects, "filterAAAA names are lowercase domains"},
	"dns-intercept":               {braidOnly, "the peer as only upstream, its address a name"},
	"dns-no-lan":                  {schemaRejects, "aggregation.peer.dns is an address, not a name"},
	"duplicate-keys":              {notYAML, "duplicate keys: YAML parsers refuse them"},
	"empty":                       {schemaRejects, "the document is null, not an object"},
	"empty-uplinks":               {schemaRejects, "uplinks is required: minItems 1"},
	"enums":                       {schemaRejects, "enums"},
	"exactly-one":                 {schemaRejects, "a secret has exactly one source (min/maxProperties)"},
	"families":                    {braidOnly, "address families of ipv4 and ipv6 sections"},
	"formats":                     {schemaRejects, "format patterns"},
	"gateway":                     {braidOnly, "the gateway is on-link and not the uplink's own address"},
	"health":                      {schemaRejects, "dns probes' resolver and name formats"},
	"interfaces":                  {schemaRejects, "interface names' pattern"},
	"invalid-utf8":                {notYAML, "whole-file guard: invalid UTF-8"},
	"kind-missing":                {schemaRejects, "kind is required"},
	"kind-wrong":                  {schemaRejects, "kind is an enum"},
	"lan-ipv6-advertise":          {braidOnly, "advertise needs an IPv6 /64 to advertise"},
	"lan-ipv6-from-uplink":        {braidOnly, "fromUplink's uplink must ask for a prefix"},
	"lan-ipv6-from-uplink-static": {braidOnly, "fromUplink's uplink must use router advertisements"},
	"lan-ipv6-nothing":            {braidOnly, "an ipv6 section with nothing to do"},
	"lan-ipv6-two-sources":        {braidOnly, "at most one of fromTunnel and fromUplink"},
	"lan-ipv6-unknown-uplink":     {braidOnly, "references to uplinks"},
	"mac":                         {schemaRejects, "MAC address pattern"},
	"merge-key":                   {braidOnly, "merge keys: YAML parsers merge them, braid refuses them"},
	"missing-required":            {schemaRejects, "required fields"},
	"missing-top":                 {schemaRejects, "required top-level fields"},
	"multi-document":              {braidOnly, "whole-file guard: a second document, which an editor validates on its own"},
	"names":                       {schemaRejects, "name pattern"},
	"no-prefix-delegation":        {braidOnly, "fromTunnel's tunnel must ask for a prefix"},
	"no-uplinks":                  {schemaRejects, "uplinks is required"},
	"not-mapping":                 {schemaRejects, "the document is a list, not an object"},
	"nulls":                       {schemaRejects, "required values written empty"},
	"peer":                        {schemaRejects, "a peer's key is required; allowLocal is ADDRESS:PORT"},
	"peer-shape":                  {schemaRejects, "a router's fields in a peer's spec"},
	"ranges":                      {braidOnly, "numbers' ranges (MTU, priority, ports)"},
	"references":                  {braidOnly, "references to uplinks and tunnels"},
	"route-domains":               {schemaRejects, "domains are lowercase names; via is required"},
	"routes":                      {braidOnly, "a route needs to, from or domains"},
	"scalar":                      {schemaRejects, "the document is a string, not an object"},
	"secrets":                     {schemaRejects, "unknown field of a secret"},
	"string-lists":                {schemaRejects, "list items of the wrong type"},
	"syntax-flow":                 {notYAML, "syntax error"},
	"syntax-indent":               {notYAML, "syntax error"},
	"syntax-quote":                {notYAML, "syntax error"},
	"syntax-tab":                  {notYAML, "syntax error"},
	"tables":                      {braidOnly, "routing tables' range and uniqueness"},
	"tunnels":                     {schemaRejects, "tunnel interface names' pattern"},
	"tunnels-too-many":            {braidOnly, "how many tunnels fit braid's tables"},
	"unknown-fields":              {schemaRejects, "unknown fields (additionalProperties false)"},
	"uplink-ipv6":                 {schemaRejects, "wrong types and unknown fields in ipv6"},
	"wrong-types":                 {schemaRejects, "values of the wrong type"},
}

// TestSchemaOnErrorFixtures checks the classification of every malformed
// spec of testdata/errors (each of which braid rejects: TestErrorsGolden):
// the schema rejects those it claims to, accepts those only braid can
// reject, and the YAML parser refuses the rest. A new fixture must be
// classified here.
func TestSchemaOnErrorFixtures(t *testing.T) {
	s := compileSchema(t)
	files, err := filepath.Glob("testdata/errors/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		seen = append(seen, name)
		t.Run(name, func(t *testing.T) {
			c, ok := fixtureClasses[name]
			if !ok {
				t.Fatalf("%s is not classified in fixtureClasses: add it (%q, %q or %q)", f, schemaRejects, braidOnly, notYAML)
			}
			v, err := yamlInstance(f)
			if c.class == notYAML {
				if err == nil {
					t.Fatalf("classified %q (%s), but it reads as YAML", c.class, c.why)
				}
				return
			}
			if err != nil {
				t.Fatalf("classified %q, but it is not YAML: %v", c.class, err)
			}
			err = s.Validate(v)
			switch {
			case c.class == schemaRejects && err == nil:
				t.Fatalf("classified %q (%s), but the schema accepts it", c.class, c.why)
			case c.class == braidOnly && err != nil:
				t.Fatalf("classified %q (%s), but the schema rejects it:\n%v", c.class, c.why, err)
			}
		})
	}
	for name := range fixtureClasses {
		if !slices.Contains(seen, name) {
			t.Errorf("fixtureClasses names %s, which is not in testdata/errors", name)
		}
	}
}
