package main

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestParseCBC(t *testing.T) {
	partial := `Cbc0010I After 46000 nodes, 19052 on tree, -12484.954 best solution, best possible -14876.029 (885.44 seconds)
Cbc0005I Partial search - best objective -12484.954 (best possible -14876.029), took 10535208 iterations and 46654 nodes (900.02 seconds)
Result - Stopped on time limit
Objective value:                12484.95400000
`
	r := parseCBC(partial)
	if r.proven || r.obj != 12484.954 || r.bound != 14876.029 {
		t.Fatalf("partial: %+v", r)
	}
	optimal := `Cbc0010I After 0 nodes, 1 on tree, -5538.976 best solution, best possible -7627.9283 (6.34 seconds)
Result - Optimal solution found

Objective value:                6595.09400000
`
	r = parseCBC(optimal)
	if !r.proven || r.obj != 6595.094 || r.bound != 6595.094 {
		t.Fatalf("optimal: %+v", r)
	}
}

func TestParseGLPK(t *testing.T) {
	partial := `+     0: mip =     not found yet <=              +inf        (1; 0)
+  4711: >>>>>   6.113600000e+03 <=   7.828182950e+03  28.0% (148; 37)
+ 32379: mip =   6.351699000e+03 <=   7.552428026e+03  18.9% (865; 288)
TIME LIMIT EXCEEDED; SEARCH TERMINATED
`
	r := parseGLPK(partial)
	if r.proven || r.obj != 6351.699 || r.bound != 7552.428026 {
		t.Fatalf("partial: %+v", r)
	}
	r = parseGLPK("+     0: mip =     not found yet <=              +inf        (1; 0)\n")
	if !math.IsNaN(r.obj) || !math.IsInf(r.bound, 1) {
		t.Fatalf("nothing found: %+v", r)
	}
	optimal := `+ 41077: mip =   6.595094000e+03 <=     tree is empty   0.0% (0; 82151)
INTEGER OPTIMAL SOLUTION FOUND
`
	r = parseGLPK(optimal)
	if !r.proven || r.obj != 6595.094 || r.bound != 6595.094 {
		t.Fatalf("optimal: %+v", r)
	}
}

func TestCompare(t *testing.T) {
	a := result{"accord", 13074, 15744, 600, false}
	c := result{"cbc", 12485, 14876, 900, false}
	g := result{"glpk", math.NaN(), math.Inf(1), 600, false}
	if mark, ok, same := compare(a, c, g); !ok || same || !strings.HasPrefix(mark, "unproven") {
		t.Fatalf("consistent unproven: %q %v", mark, ok)
	}
	a = result{"accord", 6595.094, 6595.094, 6, true}
	c = result{"cbc", 6595.094, 6595.094, 158, true}
	g = result{"glpk", 6595.094, 6595.094, 400, true}
	if mark, ok, same := compare(a, c, g); !ok || !same || mark != "yes" {
		t.Fatalf("agreeing: %q %v", mark, ok)
	}
	g = result{"glpk", 6595.094, 6681.057, 600, false}
	if mark, ok, same := compare(a, c, g); !ok || !same || mark != "same objective; not proven by glpk (6595.094 <= 6681.057)" {
		t.Fatalf("same but unproven: %q %v", mark, ok)
	}
	c = result{"cbc", 6600, 6600, 158, true}
	if mark, ok, _ := compare(a, c, g); ok || !strings.Contains(mark, "cbc found 6600") {
		t.Fatalf("contradiction: %q %v", mark, ok)
	}
}

func TestParseHiGHS(t *testing.T) {
	r, err := parseHiGHS("noise\n" + `{"status":"Time limit reached","objective":1525.77,"primal":1525.77,"dual":7783.315}`)
	if err != nil || r.proven || r.obj != 1525.77 || r.bound != 7783.315 {
		t.Fatalf("partial: %+v %v", r, err)
	}
	r, err = parseHiGHS(`{"status":"Optimal","objective":2932.233,"primal":2932.233,"dual":2932.233}`)
	if err != nil || !r.proven || r.obj != 2932.233 || r.bound != 2932.233 {
		t.Fatalf("optimal: %+v %v", r, err)
	}
	if _, err := parseHiGHS("Killed"); err == nil {
		t.Fatal("no result line accepted")
	}
	if r := atLeastLimit(result{sec: 3}, 10*time.Second); r.sec != 10 {
		t.Fatalf("unfinished peer counts %v s", r.sec)
	}
	a := result{"accord", 100, 100, 1, true}
	if !equalObjectives([]result{a, {"highs", 90, 120, 10, false}}) || equalObjectives([]result{a, {"cbc", 99, 99, 1, true}}) {
		t.Fatal("equal objectives rule")
	}
}
