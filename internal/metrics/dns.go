package metrics

import "strconv"

// WatchDNS makes the braid_dns_* metrics report what stats returns at
// each scrape (the running forwarder's; the last one watched when its
// session restarts). It may be called from any goroutine.
func (m *Metrics) WatchDNS(stats func() DNS) { m.dns.Store(&stats) }

// dnsFamilies reads the running forwarder's counts; nothing before a
// forwarder runs.
func (m *Metrics) dnsFamilies() []*family {
	f := m.dns.Load()
	if f == nil {
		return nil
	}
	s := (*f)()
	one := func(name string, v uint64, help string) *family {
		f := &family{name: name, help: help, kind: counter}
		f.add(float64(v))
		return f
	}
	up := &family{name: "braid_dns_upstream_up", kind: gauge,
		help: "1 while the forwarder asks an upstream resolver (it answered its last try), 0 while it is skipped as dead; fallback=\"true\" for the uplinks' resolvers asked when every upstream is dead."}
	inUse := &family{name: "braid_dns_upstream_in_use", kind: gauge,
		help: "1 for the resolver the forwarder asks first now: the first upstream up, or the first fallback when every upstream is dead."}
	rtt := &family{name: "braid_dns_upstream_rtt_seconds", kind: gauge,
		help: "The round trip of an upstream resolver's last answer; absent before one."}
	seen := map[[3]string]bool{}
	for _, u := range s.Upstreams {
		key := [3]string{u.Name, u.Addr, strconv.FormatBool(u.Fallback)}
		if seen[key] {
			continue // a resolver listed twice is one series
		}
		seen[key] = true
		labels := []string{"upstream", key[0], "address", key[1], "fallback", key[2]}
		up.add(boolValue(u.Up), labels...)
		inUse.add(boolValue(u.InUse), labels...)
		if u.RTT > 0 {
			rtt.add(u.RTT.Seconds(), labels...)
		}
	}
	return []*family{
		one("braid_dns_queries_total", s.Queries,
			"Queries braid's DNS forwarder was asked by the LAN, since its session started."),
		one("braid_dns_cache_hits_total", s.CacheHits, "Queries the forwarder answered from its cache."),
		one("braid_dns_filtered_answers_total", s.Filtered,
			"Answers the AAAA policy changed (dns.aaaa: filter, dns.filterAAAA): AAAA records dropped, ipv6hint stripped."),
		one("braid_dns_egress_elements_total", s.EgressElements,
			"Per-domain egress set elements the forwarder committed to the kernel (added or renewed) before answering."),
		up, inUse, rtt,
	}
}
