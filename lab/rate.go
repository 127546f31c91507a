package lab

import "fmt"

// SetRate changes the rate limit of the ISP isp (RoleISP1 or RoleISP2) to
// rate bit/s on both of its links, before Up builds the topology: a lab
// whose uplinks differ otherwise than the default 50 and 10 Mbit/s (the
// demo shapes them so that their sum beats the faster one clearly).
func (t *Topology) SetRate(isp Role, rate uint64) error {
	if isp != RoleISP1 && isp != RoleISP2 {
		return fmt.Errorf("rate of %q: only isp1 and isp2 have a rate limit", isp)
	}
	if rate == 0 {
		return fmt.Errorf("rate of %s: want a positive rate in bit/s", isp)
	}
	n := 0
	for i := range t.Namespaces {
		if t.Namespaces[i].Role != isp {
			continue
		}
		for j := range t.Namespaces[i].Qdiscs {
			t.Namespaces[i].Qdiscs[j].Rate = rate
			n++
		}
	}
	if n == 0 {
		return fmt.Errorf("rate of %s: the topology limits no link of it", isp)
	}
	return nil
}
