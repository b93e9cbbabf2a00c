package modelref

import (
	"errors"
	"testing"
)

func TestParseVersion(t *testing.T) {
	good := map[string]Version{"0.0.0": {}, "1.2.3": {1, 2, 3}, "10.20.30": {10, 20, 30}, "2147483647.0.1": {maxVersionPart, 0, 1}}
	for s, want := range good {
		got, err := ParseVersion(s)
		if err != nil || got != want {
			t.Errorf("ParseVersion(%q) = %v, %v; want %v", s, got, err, want)
		}
		if got.String() != s {
			t.Errorf("String() = %q, want %q", got.String(), s)
		}
	}
	for _, s := range []string{"", "1", "1.2", "1.2.3.4", "01.2.3", "1.02.3", "1.2.03", "v1.2.3", "1.2.3-rc1",
		"1.2.3+b", "-1.2.3", "1..3", "1.2.x", "2147483648.0.0", "99999999999999999999999.0.0", "1.2. 3", "１.2.3"} {
		if _, err := ParseVersion(s); !errors.Is(err, ErrVersion) {
			t.Errorf("ParseVersion(%q) err = %v, want ErrVersion", s, err)
		}
	}
}

func TestVersionCompareAndBump(t *testing.T) {
	cases := []struct {
		a, b string
		cmp  int
		bump Bump
	}{
		{"1.2.3", "1.2.3", 0, BumpNone},
		{"1.2.4", "1.2.3", 1, BumpPatch},
		{"1.3.0", "1.2.9", 1, BumpMinor},
		{"2.0.0", "1.9.9", 1, BumpMajor},
		{"1.10.0", "1.9.0", 1, BumpMinor},
		{"1.2.3", "1.3.0", -1, BumpNone},
		{"0.9.9", "1.0.0", -1, BumpNone},
	}
	for _, c := range cases {
		a, b := mustVersion(t, c.a), mustVersion(t, c.b)
		if got := a.Compare(b); got != c.cmp {
			t.Errorf("%s.Compare(%s) = %d, want %d", c.a, c.b, got, c.cmp)
		}
		if got := a.BumpFrom(b); got != c.bump {
			t.Errorf("%s.BumpFrom(%s) = %s, want %s", c.a, c.b, got, c.bump)
		}
	}
}

func TestConstraint(t *testing.T) {
	cases := []struct {
		c       string
		match   []string
		nomatch []string
	}{
		{"1.2.3", []string{"1.2.3"}, []string{"1.2.4", "1.2.2"}},
		{"^1.2", []string{"1.2.0", "1.2.9", "1.9.0"}, []string{"1.1.9", "2.0.0", "0.2.0"}},
		{"^1.2.3", []string{"1.2.3", "1.3.0"}, []string{"1.2.2", "2.0.0"}},
		{"^0.2.3", []string{"0.2.3", "0.2.9"}, []string{"0.3.0", "1.0.0", "0.2.2"}},
		{"^0.0.3", []string{"0.0.3"}, []string{"0.0.4", "0.1.0"}},
		{"~1.2.3", []string{"1.2.3", "1.2.10"}, []string{"1.3.0", "1.2.2"}},
		{"~1.2", []string{"1.2.0", "1.2.5"}, []string{"1.3.0", "1.1.0"}},
	}
	for _, c := range cases {
		con, err := ParseConstraint(c.c)
		if err != nil {
			t.Fatalf("ParseConstraint(%q): %v", c.c, err)
		}
		for _, v := range c.match {
			if !con.Match(mustVersion(t, v)) {
				t.Errorf("%s should match %s", c.c, v)
			}
		}
		for _, v := range c.nomatch {
			if con.Match(mustVersion(t, v)) {
				t.Errorf("%s should not match %s", c.c, v)
			}
		}
	}
	for _, s := range []string{"", "^", "^1", "~1", ">=1.2.3", "^01.2", "1.2", "^1.2.3.4", "*", string(make([]byte, 100))} {
		if _, err := ParseConstraint(s); !errors.Is(err, ErrVersion) {
			t.Errorf("ParseConstraint(%q) err = %v, want ErrVersion", s, err)
		}
	}
}

func TestConstraintBest(t *testing.T) {
	con, _ := ParseConstraint("^1.2")
	vs := []Version{{1, 1, 0}, {1, 4, 2}, {2, 0, 0}, {1, 2, 0}, {1, 4, 1}}
	got, ok := con.Best(vs)
	if !ok || got != (Version{1, 4, 2}) {
		t.Errorf("Best = %v, %v; want 1.4.2", got, ok)
	}
	if _, ok := con.Best([]Version{{2, 0, 0}}); ok {
		t.Error("Best found a version where none matches")
	}
}

func mustVersion(t *testing.T, s string) Version {
	t.Helper()
	v, err := ParseVersion(s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
