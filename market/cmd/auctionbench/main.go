// Command auctionbench compares Accord's winner-determination solver with
// CBC and HiGHS (npm highs, WebAssembly, one thread; GLPK with -glpk) on CATS-style "arbitrary" instances (fixed seeds; by default
// the distribution of Gasse et al.'s benchmark sets, wdp.BenchmarkCATS, or
// with -dist cats the CATS paper's, wdp.DefaultCATS), checks that
// the objectives are equal (every proven optimum agrees, every unproven
// answer lies within every bound), and prints per-size medians, the time
// ratios accord/peer, the cost of VCG payments relative to winner
// determination, and issue 25's targets with PASS or FAIL. It is
// `make bench-auction`.
package main

import (
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
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/accordmesh/accord/market/wdp"
)

type size struct{ goods, bids int }

func main() {
	if err := bench(); err != nil {
		log.Fatal(err)
	}
}

// bench runs the whole comparison; returning, rather than exiting, lets
// its deferred clean-up remove the temporary directory on every path.
func bench() error {
	var (
		sizesFlag  = flag.String("sizes", "100x500,200x1000,300x1500", "comma-separated GOODSxBIDS")
		seeds      = flag.Int("seeds", 3, "instances per size (seeds 1..N)")
		limit      = flag.Duration("limit", 10*time.Minute, "time limit per solver per instance")
		vcgSize    = flag.String("vcg", "200x1000", "size whose VCG time is compared with WDP time (empty: skip)")
		dir        = flag.String("dir", "", "where to write LP files (default: a temporary directory)")
		export     = flag.String("export", "", "only write each instance into this directory, as JSON (the accord auction solve format) and as an LP file")
		dist       = flag.String("dist", "benchmark", "instance distribution: benchmark (Gasse et al.'s benchmark sets, as their code and Ecole generate them) or cats (the CATS paper's arbitrary distribution)")
		addGood    = flag.Float64("add-good", 0, "probability of adding one more good to a bundle (0: the distribution's, 0.7 for benchmark, 0.9 for cats)")
		threads    = flag.Int("threads", runtime.NumCPU(), "search threads for Accord and for CBC (HiGHS and GLPK have one)")
		withGLPK   = flag.Bool("glpk", false, "also run glpsol (Debian glpk-utils), one thread; not a target")
		clear      = flag.String("clear", "", "instead of CATS instances, clear a synthetic market batch of JOBSxPROVIDERS (e.g. 1000x100: multi-task jobs, co-location, GPU models) with market.ClearBatch and solve its instance with the peers")
		clearSeed  = flag.Uint64("clear-seed", 1, "seed of the -clear batch")
		cpuProfile = flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
		noPeers    = flag.Bool("no-peers", false, "run Accord only (solve and VCG), without CBC, HiGHS or GLPK: a focused VCG/WDP measurement")
		highsCache = flag.String("highs-cache", "", "where npm installs highs@"+HiGHSVersion+" (default: the user cache dir, accord/highs-VERSION)")
	)
	flag.Parse()
	var params wdp.CATSParams
	switch *dist {
	case "benchmark":
		params = wdp.BenchmarkCATS()
	case "cats":
		params = wdp.DefaultCATS()
	default:
		return fmt.Errorf("-dist: want benchmark or cats, got %q", *dist)
	}
	if *threads < 1 {
		return fmt.Errorf("-threads: want at least 1, got %d", *threads)
	}
	if *addGood > 0 {
		params.AddGoodProb = *addGood
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	sizes, err := parseSizes(*sizesFlag)
	if err != nil {
		return err
	}
	if *export != "" {
		for _, sz := range sizes {
			for seed := 1; seed <= *seeds; seed++ {
				in, err := wdp.GenerateCATS(uint64(seed), sz.goods, sz.bids, params)
				if err != nil {
					return err
				}
				b, err := json.Marshal(in)
				if err != nil {
					return err
				}
				base := filepath.Join(*export, fmt.Sprintf("cats-%dx%d-%d", sz.goods, sz.bids, seed))
				if err := os.WriteFile(base+".json", b, 0o644); err != nil {
					return err
				}
				if err := writeLP(base+".lp", in); err != nil {
					return err
				}
			}
		}
		return nil
	}
	var peers []peer
	if !*noPeers {
		var err error
		if peers, err = setupPeers(*limit, *threads, *highsCache, *withGLPK); err != nil {
			return err
		}
	}
	if *dir == "" {
		d, err := os.MkdirTemp("", "auctionbench")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		*dir = d
	}
	if *clear != "" {
		sz, err := parseSizes(*clear)
		if err != nil || len(sz) != 1 {
			return fmt.Errorf("-clear: want JOBSxPROVIDERS, got %q", *clear)
		}
		return benchClear(sz[0].goods, sz[0].bids, *clearSeed, *limit, *dir, peers)
	}
	ctx := context.Background()
	inconsistent, unequal, unproven := 0, 0, 0
	var names []string
	for _, p := range peers {
		names = append(names, p.name)
	}
	fmt.Printf("distribution %s, add-good %.2f, limit %v per solver per instance; %d thread(s) for accord and cbc", *dist, params.AddGoodProb, *limit, *threads)
	if len(peers) > 1 && peers[1].name == "highs" {
		fmt.Printf("; highs %s runs as WebAssembly under node on one thread", HiGHSVersion)
	}
	if *withGLPK {
		fmt.Printf("; glpk one thread")
	}
	fmt.Println()
	fmt.Printf("%-10s %4s %12s %10s", "size", "seed", "objective", "accord_s")
	for _, n := range names {
		fmt.Printf(" %10s", n+"_s")
	}
	fmt.Printf(" %8s %s\n", "nodes", "agree")
	type row struct {
		accord []float64
		peer   map[string][]float64
		proven int // instances Accord proved
		within int // ... within provenWithin
	}
	var vcg struct{ vcg, wdp []float64 } // the VCG size's measurements
	summary := map[size]*row{}
	for _, sz := range sizes {
		r := &row{peer: map[string][]float64{}}
		summary[sz] = r
		name := fmt.Sprintf("%dx%d", sz.goods, sz.bids)
		for seed := 1; seed <= *seeds; seed++ {
			in, err := wdp.GenerateCATS(uint64(seed), sz.goods, sz.bids, params)
			if err != nil {
				return err
			}
			lpPath := filepath.Join(*dir, fmt.Sprintf("cats-%s-%d.lp", name, seed))
			if err := writeLP(lpPath, in); err != nil {
				return err
			}
			sol, err := wdp.Solve(ctx, in, wdp.Options{TimeLimit: *limit, Threads: *threads})
			if err != nil {
				return err
			}
			rs := []result{{"accord", sol.Objective, sol.Bound, sol.Seconds, sol.Optimal}}
			for _, p := range peers {
				rs = append(rs, atLeastLimit(p.run(lpPath), *limit))
			}
			mark, ok, _ := compare(rs...)
			if !ok {
				inconsistent++
			}
			if !equalObjectives(rs) {
				unequal++
			}
			for _, x := range rs {
				if !x.proven {
					unproven++
					break
				}
			}
			fmt.Printf("%-10s %4d %12.3f %10.3f", name, seed, sol.Objective, sol.Seconds)
			for _, x := range rs[1:] {
				fmt.Printf(" %10.3f", x.sec)
				r.peer[x.solver] = append(r.peer[x.solver], x.sec)
			}
			fmt.Printf(" %8d %s\n", sol.Nodes, mark)
			r.accord = append(r.accord, sol.Seconds)
			if sol.Optimal {
				r.proven++
				if sol.Seconds <= provenWithin.Seconds() {
					r.within++
				}
			}
			if *vcgSize != name {
				continue
			}
			if !sol.Optimal {
				// Payments of an unproven allocation are not VCG payments.
				fmt.Printf("%-10s %4d VCG not run: winner determination is not proven optimal within %v\n", "", seed, *limit)
				continue
			}
			p, err := wdp.VCG(ctx, in, sol, wdp.Options{TimeLimit: *limit, Threads: *threads})
			if err != nil {
				return err
			}
			fmt.Printf("%-10s %4d VCG %d winning bidders: %.3fs = %.2fx WDP (exact %v, target <= %gx)\n",
				"", seed, len(p.ByBidder), p.Seconds, p.Seconds/sol.Seconds, p.Exact, vcgTarget)
			vcg.vcg = append(vcg.vcg, p.Seconds)
			vcg.wdp = append(vcg.wdp, sol.Seconds)
		}
	}
	fmt.Println()
	fmt.Println("times are to proven optimality; a solver that did not finish counts at least -limit")
	fmt.Printf("%-10s %12s", "size", "accord_med")
	for _, n := range names {
		fmt.Printf(" %12s", n+"_med")
	}
	for _, n := range names {
		fmt.Printf(" %12s", "accord/"+n)
	}
	fmt.Println()
	var targets []string
	for _, sz := range sizes {
		r := summary[sz]
		label := fmt.Sprintf("%dx%d", sz.goods, sz.bids)
		a := median(r.accord)
		fmt.Printf("%-10s %12.3f", label, a)
		for _, n := range names {
			fmt.Printf(" %12.3f", median(r.peer[n]))
		}
		for _, n := range names {
			fmt.Printf(" %12.2f", a/median(r.peer[n]))
		}
		fmt.Println()
		for _, n := range names {
			if n == "glpk" {
				continue // optional, not a target
			}
			ratio := a / median(r.peer[n])
			targets = append(targets, fmt.Sprintf("%s median accord/%s %.2f <= %.2f: %s", label, n, ratio, ratioTarget, passFail(ratio <= ratioTarget)))
		}
		if *dist == "cats" && sz == (size{150, 750}) {
			targets = append(targets, fmt.Sprintf("%s cats: %d/%d proven within %v: %s", label, r.within, len(r.accord), provenWithin, passFail(r.within == len(r.accord))))
		}
	}
	if len(vcg.vcg) > 0 {
		// Summarised like accord/cbc: the ratio of the medians; the
		// per-instance ratios are printed above and their range here.
		lo, hi := math.Inf(1), math.Inf(-1)
		for i := range vcg.vcg {
			lo, hi = min(lo, vcg.vcg[i]/vcg.wdp[i]), max(hi, vcg.vcg[i]/vcg.wdp[i])
		}
		v, w := median(vcg.vcg), median(vcg.wdp)
		fmt.Printf("%-10s VCG median %.3fs, WDP median %.3fs: vcg/wdp %.2f (per instance %.2f to %.2f)\n", *vcgSize, v, w, v/w, lo, hi)
		targets = append(targets, fmt.Sprintf("%s VCG/WDP %.2f <= %g (per instance %.2f to %.2f): %s", *vcgSize, v/w, vcgTarget, lo, hi, passFail(hi <= vcgTarget)))
	} else if *vcgSize != "" {
		targets = append(targets, fmt.Sprintf("%s VCG/WDP: not measured (no proven allocation): FAIL", *vcgSize))
	}
	targets = append(targets, fmt.Sprintf("equal objectives (proven optima agree, unproven answers within every bound): %d/%d instances: %s",
		len(sizes)**seeds-unequal, len(sizes)**seeds, passFail(unequal == 0)))
	if unproven > 0 {
		fmt.Printf("\n%d instance(s) where some solver did not prove optimality within %v; there the answers are checked against each other's bounds\n", unproven, *limit)
	}
	fmt.Println("\ntargets:")
	for _, t := range targets {
		fmt.Println("  " + t)
	}
	if inconsistent > 0 {
		return fmt.Errorf("%d instance(s) with contradictory results (a solution above a proven bound)", inconsistent)
	}
	if unequal > 0 {
		return fmt.Errorf("%d instance(s) where proven optima differ", unequal)
	}
	return nil
}

// Targets of issue 25, checked in the same run.
const (
	ratioTarget  = 0.25             // median time accord/peer at every size
	vcgTarget    = 5.0              // VCG time per instance / WDP time at -vcg
	provenWithin = 60 * time.Second // cats 150×750: every instance proven within
)

// setupPeers finds CBC (required), installs HiGHS (skipped with a note
// when npm cannot) and, with glpk, finds glpsol.
func setupPeers(limit time.Duration, threads int, highsCache string, glpk bool) ([]peer, error) {
	cbc, err := exec.LookPath("cbc")
	if err != nil {
		return nil, fmt.Errorf("auctionbench needs cbc (Debian coinor-cbc): %w", err)
	}
	peers := []peer{{"cbc", func(lp string) result { return runCBC(cbc, lp, limit, threads) }}}
	if highsCache == "" {
		c, err := os.UserCacheDir()
		if err != nil {
			return nil, fmt.Errorf("-highs-cache: %w", err)
		}
		highsCache = filepath.Join(c, "accord", "highs-"+HiGHSVersion)
	}
	if script, err := installHiGHS(highsCache); err != nil {
		fmt.Printf("HiGHS not run: %v\n", err)
	} else {
		peers = append(peers, peer{"highs", func(lp string) result { return runHiGHS(script, lp, limit) }})
	}
	if glpk {
		glpsol, err := exec.LookPath("glpsol")
		if err != nil {
			return nil, fmt.Errorf("-glpk needs glpsol (Debian glpk-utils): %w", err)
		}
		peers = append(peers, peer{"glpk", func(lp string) result { return runGLPK(glpsol, lp, limit) }})
	}
	return peers, nil
}

// peer is a solver run on the LP file.
type peer struct {
	name string
	run  func(lp string) result
}

func passFail(ok bool) string {
	if ok {
		return "PASS"
	}
	return "FAIL"
}

// atLeastLimit counts a peer that did not prove optimality as taking at
// least the time limit (it may have stopped early on an error).
func atLeastLimit(r result, limit time.Duration) result {
	if !r.proven {
		r.sec = max(r.sec, limit.Seconds())
	}
	return r
}

// equalObjectives is the pass rule: the answers are consistent with every
// bound (no incumbent above any solver's bound) and every solver that
// proved optimality found the same objective.
func equalObjectives(rs []result) bool {
	if _, ok, _ := compare(rs...); !ok {
		return false
	}
	var first *result
	for i := range rs {
		if !rs[i].proven {
			continue
		}
		if first == nil {
			first = &rs[i]
		} else if math.Abs(rs[i].obj-first.obj) > 1e-6*math.Max(1, math.Abs(first.obj)) {
			return false
		}
	}
	return true
}

// result is one solver's answer on one instance: the incumbent's objective,
// the best upper bound it proved, and whether it proved optimality.
type result struct {
	solver     string
	obj, bound float64
	sec        float64
	proven     bool
}

// compare checks three answers against each other: every incumbent must be
// at most every solver's bound, and proven optima must be equal. The mark
// is "yes" when all three proved the same optimum.
func compare(rs ...result) (mark string, consistent, same bool) {
	var bad, open []string
	for _, a := range rs {
		if !a.proven {
			open = append(open, fmt.Sprintf("%s (%.3f <= %.3f)", a.solver, a.obj, a.bound))
		}
		for _, b := range rs {
			if !math.IsNaN(a.obj) && !math.IsNaN(b.bound) && a.obj > b.bound+1e-6*math.Max(1, math.Abs(b.bound)) {
				bad = append(bad, fmt.Sprintf("%s found %.4f above %s's bound %.4f", a.solver, a.obj, b.solver, b.bound))
			}
		}
	}
	same = true
	for _, a := range rs {
		same = same && math.Abs(a.obj-rs[0].obj) <= 1e-6*math.Max(1, math.Abs(rs[0].obj))
	}
	switch {
	case len(bad) > 0:
		return "NO: " + strings.Join(bad, "; "), false, same
	case len(open) > 0 && same:
		return "same objective; not proven by " + strings.Join(open, ", "), true, true
	case len(open) > 0:
		return "unproven (" + strings.Join(open, ", ") + "), bounds consistent", true, false
	}
	return "yes", true, true
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
	cbcObj   = regexp.MustCompile(`Objective value:\s+(\S+)`)
	cbcBound = regexp.MustCompile(`best possible (-?[0-9.eE+]+)`)
	cbcOpt   = regexp.MustCompile(`Result - Optimal solution found`)
	glpkLine = regexp.MustCompile(`(?m)^\+\s*\d+: (?:mip =|>>>>>)\s+(not found yet|\S+)\s+<=\s+(\S+)`)
	glpkOpt  = regexp.MustCompile(`INTEGER OPTIMAL SOLUTION FOUND`)
)

// runCBC solves the LP file with CBC (default settings, with the given
// number of threads). Its time limit counts CPU seconds unless timeMode is
// elapsed; with threads that would cut its wall-clock time short.
func runCBC(bin, lp string, limit time.Duration, threads int) result {
	args := []string{lp, "timeMode", "elapsed", "sec", strconv.Itoa(int(limit.Seconds()))}
	if threads > 1 {
		args = append(args, "threads", strconv.Itoa(threads))
	}
	out, sec := run(limit+30*time.Second, bin, append(args, "solve")...)
	r := parseCBC(out)
	r.sec = sec
	return r
}

func parseCBC(out string) result {
	r := result{solver: "cbc", obj: math.NaN(), bound: math.Inf(1), proven: cbcOpt.MatchString(out)}
	if m := cbcObj.FindStringSubmatch(out); m != nil {
		v, _ := strconv.ParseFloat(m[1], 64)
		r.obj = math.Abs(v) // the LP file maximises; CBC reports the minimised negation
	}
	if m := cbcBound.FindAllStringSubmatch(out, -1); m != nil {
		v, _ := strconv.ParseFloat(m[len(m)-1][1], 64)
		r.bound = math.Abs(v)
	}
	if r.proven {
		r.bound = r.obj
	}
	return r
}

// runGLPK solves the LP file with glpsol (default branch-and-cut settings);
// its last progress line holds the incumbent and the bound.
func runGLPK(bin, lp string, limit time.Duration) result {
	out, sec := run(limit+30*time.Second, bin, "--lp", lp, "--tmlim", strconv.Itoa(int(limit.Seconds())))
	r := parseGLPK(out)
	r.sec = sec
	return r
}

func parseGLPK(out string) result {
	r := result{solver: "glpk", obj: math.NaN(), bound: math.Inf(1), proven: glpkOpt.MatchString(out)}
	if m := glpkLine.FindAllStringSubmatch(out, -1); m != nil {
		last := m[len(m)-1]
		if v, err := strconv.ParseFloat(last[1], 64); err == nil {
			r.obj = v
		}
		if v, err := strconv.ParseFloat(last[2], 64); err == nil {
			r.bound = v
		}
	}
	if r.proven {
		r.bound = r.obj
	}
	return r
}

func run(limit time.Duration, bin string, args ...string) (string, float64) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	start := time.Now()
	// A failed or killed run still leaves its log to parse.
	out, _ := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	return string(out), time.Since(start).Seconds()
}
