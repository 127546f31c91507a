package failpoint

import "testing"

func TestFiresAtTheNthWrite(t *testing.T) {
	t.Setenv(Env, "3")
	c, err := FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	var code int
	fired := 0
	c.exit = func(n int) { code, fired = n, fired+1 }
	c.Wrote()
	c.Wrote()
	if fired != 0 {
		t.Fatal("fired early")
	}
	c.Wrote()
	if fired != 1 || code != ExitCode {
		t.Fatalf("fired %d times with %d", fired, code)
	}
	if c.Count() != 3 {
		t.Fatalf("Count = %d", c.Count())
	}
}

func TestUnarmedAndInvalid(t *testing.T) {
	t.Setenv(Env, "")
	c, err := FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	for range 100 {
		c.Wrote()
	}
	var nilCounter *Counter
	nilCounter.Wrote()
	for _, v := range []string{"0", "-1", "x"} {
		t.Setenv(Env, v)
		if _, err := FromEnv(); err == nil {
			t.Errorf("%s=%q accepted", Env, v)
		}
	}
}
