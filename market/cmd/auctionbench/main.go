// Command auctionbench compares Accord's winner-determination solver with
// CBC and GLPK on CATS-style "arbitrary" instances (fixed seeds), checks that
// all three agree on the optimal objective, and prints per-size medians, the
// time ratios accord/CBC and accord/GLPK, and the cost of VCG payments
// relative to winner determination. It is `make bench-auction`.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/accordmesh/accord/market/wdp"
)

type size struct{ goods, bids int }

func main() {
	var (
		sizesFlag = flag.String("sizes", "100x500,200x1000,300x1500", "comma-separated GOODSxBIDS")
		seeds     = flag.Int("seeds", 3, "instances per size (seeds 1..N)")
		limit     = flag.Duration("limit", 10*time.Minute, "time limit per solver per instance")
		vcgSize   = flag.String("vcg", "200x1000", "size whose VCG time is compared with WDP time (empty: skip)")
		dir       = flag.String("dir", "", "where to write LP files (default: a temporary directory)")
		export    = flag.String("export", "", "only write each instance as JSON (the accord auction solve format) into this directory")
	)
	flag.Parse()
	sizes, err := parseSizes(*sizesFlag)
	if err != nil {
		log.Fatal(err)
	}
	if *dir == "" {
		d, err := os.MkdirTemp("", "auctionbench")
		if err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(d)
		*dir = d
	}
	if *export != "" {
		for _, sz := range sizes {
			for seed := 1; seed <= *seeds; seed++ {
				in, err := wdp.GenerateCATS(uint64(seed), sz.goods, sz.bids, wdp.DefaultCATS())
				if err != nil {
					log.Fatal(err)
				}
				b, err := json.Marshal(in)
				if err != nil {
					log.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(*export, fmt.Sprintf("cats-%dx%d-%d.json", sz.goods, sz.bids, seed)), b, 0o644); err != nil {
					log.Fatal(err)
				}
			}
		}
		return
	}
	cbc, errCBC := exec.LookPath("cbc")
	glpsol, errGLPK := exec.LookPath("glpsol")
	if errCBC != nil || errGLPK != nil {
		log.Fatalf("auctionbench needs cbc (Debian coinor-cbc) and glpsol (Debian glpk-utils): %v %v", errCBC, errGLPK)
	}
	ctx := context.Background()
	disagree := 0
	fmt.Printf("%-10s %4s %12s %10s %10s %10s %8s %s\n", "size", "seed", "objective", "accord_s", "cbc_s", "glpk_s", "nodes", "agree")
	type row struct{ accord, cbc, glpk []float64 }
	summary := map[size]*row{}
	for _, sz := range sizes {
		r := &row{}
		summary[sz] = r
		for seed := 1; seed <= *seeds; seed++ {
			in, err := wdp.GenerateCATS(uint64(seed), sz.goods, sz.bids, wdp.DefaultCATS())
			if err != nil {
				log.Fatal(err)
			}
			lpPath := filepath.Join(*dir, fmt.Sprintf("cats-%dx%d-%d.lp", sz.goods, sz.bids, seed))
			if err := writeLP(lpPath, in); err != nil {
				log.Fatal(err)
			}
			sol, err := wdp.Solve(ctx, in, wdp.Options{TimeLimit: *limit})
			if err != nil {
				log.Fatal(err)
			}
			cObj, cSec, cOpt := runCBC(cbc, lpPath, *limit)
			gObj, gSec, gOpt := runGLPK(glpsol, lpPath, *limit)
			agree := sol.Optimal && cOpt && gOpt && close(sol.Objective, cObj) && close(sol.Objective, gObj)
			mark := "yes"
			if !agree {
				mark = fmt.Sprintf("NO (accord opt=%v %.4f, cbc opt=%v %.4f, glpk opt=%v %.4f)", sol.Optimal, sol.Objective, cOpt, cObj, gOpt, gObj)
				disagree++
			}
			fmt.Printf("%-10s %4d %12.3f %10.3f %10.3f %10.3f %8d %s\n", fmt.Sprintf("%dx%d", sz.goods, sz.bids), seed, sol.Objective, sol.Seconds, cSec, gSec, sol.Nodes, mark)
			r.accord = append(r.accord, sol.Seconds)
			r.cbc = append(r.cbc, cSec)
			r.glpk = append(r.glpk, gSec)
			if *vcgSize == fmt.Sprintf("%dx%d", sz.goods, sz.bids) && sol.Optimal {
				p, err := wdp.VCG(ctx, in, sol, wdp.Options{TimeLimit: *limit})
				if err != nil {
					log.Fatal(err)
				}
				fmt.Printf("%-10s %4d VCG %d winning bidders: %.3fs = %.2fx WDP (exact %v, target <= 10x)\n",
					"", seed, len(p.ByBidder), p.Seconds, p.Seconds/sol.Seconds, p.Exact)
			}
		}
	}
	fmt.Println()
	fmt.Printf("%-10s %12s %12s %12s %12s %12s\n", "size", "accord_med", "cbc_med", "glpk_med", "accord/cbc", "accord/glpk")
	for _, sz := range sizes {
		r := summary[sz]
		a, c, g := median(r.accord), median(r.cbc), median(r.glpk)
		fmt.Printf("%-10s %12.3f %12.3f %12.3f %12.2f %12.2f\n", fmt.Sprintf("%dx%d", sz.goods, sz.bids), a, c, g, a/c, a/g)
	}
	if disagree > 0 {
		fmt.Printf("\n%d instance(s) without agreement on a proven optimum\n", disagree)
		os.Exit(1)
	}
	fmt.Println("\nall objectives agree")
}

func parseSizes(s string) ([]size, error) {
	var out []size
	for _, f := range strings.Split(s, ",") {
		var z size
		if _, err := fmt.Sscanf(strings.TrimSpace(f), "%dx%d", &z.goods, &z.bids); err != nil {
			return nil, fmt.Errorf("bad size %q: want GOODSxBIDS", f)
		}
		out = append(out, z)
	}
	return out, nil
}

func writeLP(path string, in *wdp.Instance) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := wdp.WriteLP(f, in); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func close(a, b float64) bool { return math.Abs(a-b) <= 1e-6*math.Max(1, math.Abs(a)) }

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

var (
	cbcObj    = regexp.MustCompile(`Objective value:\s+(\S+)`)
	cbcOpt    = regexp.MustCompile(`Result - Optimal solution found`)
	glpkObj   = regexp.MustCompile(`obj = ([-+0-9.eE]+)`)
	glpkOptRe = regexp.MustCompile(`INTEGER OPTIMAL SOLUTION FOUND`)
)

// runCBC solves the LP file with CBC (default settings, one thread) and
// returns the objective, wall seconds and whether optimality was proven.
func runCBC(bin, lp string, limit time.Duration) (float64, float64, bool) {
	out, sec := run(limit+30*time.Second, bin, lp, "sec", strconv.Itoa(int(limit.Seconds())), "solve")
	m := cbcObj.FindStringSubmatch(out)
	if m == nil {
		return math.NaN(), sec, false
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return math.Abs(v), sec, cbcOpt.MatchString(out)
}

// runGLPK solves the LP file with glpsol (default branch-and-cut settings).
func runGLPK(bin, lp string, limit time.Duration) (float64, float64, bool) {
	out, sec := run(limit+30*time.Second, bin, "--lp", lp, "--tmlim", strconv.Itoa(int(limit.Seconds())))
	var v float64
	ok := false
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if m := glpkObj.FindStringSubmatch(sc.Text()); m != nil && strings.Contains(sc.Text(), "mip =") {
			v, _ = strconv.ParseFloat(m[1], 64)
		}
	}
	if m := regexp.MustCompile(`mip =\s+([-+0-9.eE]+)`).FindAllStringSubmatch(out, -1); m != nil {
		v, _ = strconv.ParseFloat(m[len(m)-1][1], 64)
		ok = true
	}
	return v, sec, ok && glpkOptRe.MatchString(out)
}

func run(limit time.Duration, bin string, args ...string) (string, float64) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	start := time.Now()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	sec := time.Since(start).Seconds()
	if err != nil && ctx.Err() != nil {
		return string(out), sec
	}
	return string(out), sec
}
