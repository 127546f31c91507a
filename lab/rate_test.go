package lab

import (
	"strings"
	"testing"
)

func TestSetRate(t *testing.T) {
	tp := Default()
	if err := tp.SetRate(RoleISP1, 30_000_000); err != nil {
		t.Fatal(err)
	}
	rates := map[Role][]uint64{}
	for _, ns := range tp.Namespaces {
		for _, q := range ns.Qdiscs {
			rates[ns.Role] = append(rates[ns.Role], q.Rate)
		}
	}
	if got := rates[RoleISP1]; len(got) != 2 || got[0] != 30_000_000 || got[1] != 30_000_000 {
		t.Errorf("isp1's qdiscs: %v, want both at 30 Mbit/s", got)
	}
	if got := rates[RoleISP2]; len(got) != 2 || got[0] != ISP2Rate || got[1] != ISP2Rate {
		t.Errorf("isp2's qdiscs: %v, want them untouched at %d", got, ISP2Rate)
	}
	if err := tp.Validate(); err != nil {
		t.Error(err)
	}

	for _, c := range []struct {
		isp  Role
		rate uint64
		want string
	}{
		{RoleInet, 1, "only isp1 and isp2"},
		{RoleISP2, 0, "positive rate"},
	} {
		if err := tp.SetRate(c.isp, c.rate); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("SetRate(%s, %d) = %v, want an error saying %q", c.isp, c.rate, err, c.want)
		}
	}
	empty := Topology{}
	if err := empty.SetRate(RoleISP1, 1); err == nil {
		t.Error("SetRate on a topology without isp1's qdiscs succeeded")
	}
}
