package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// HiGHSVersion is the npm package of HiGHS (compiled to WebAssembly) the
// bench installs; it runs on one thread under this machine's Node.
const HiGHSVersion = "1.15.3"

// highsRunner is the Node script that solves one LP file with HiGHS and
// prints one JSON line: the status, the incumbent and the dual bound from
// HiGHS's solving report (the result object carries no bound).
const highsRunner = `const fs = require('fs');
const [lp, limit] = process.argv.slice(2);
let primal = null, dual = null;
const grab = (s) => {
  let m = /^\s*Dual bound\s+(\S+)/.exec(s); if (m) dual = Number(m[1]);
  m = /^\s*Primal bound\s+(\S+)/.exec(s); if (m) primal = Number(m[1]);
};
require('highs')({print: grab, printErr: grab}).then((highs) => {
  const r = highs.solve(fs.readFileSync(lp, 'utf8'), {time_limit: Number(limit), mip_rel_gap: 0, threads: 1});
  console.log(JSON.stringify({status: r.Status, objective: r.ObjectiveValue, primal: primal, dual: dual}));
}).catch((e) => { console.log(JSON.stringify({status: 'error: ' + e})); });
`

// installHiGHS installs the highs npm package into cache (created when
// missing) unless it is there already, and writes the runner script. It
// returns the script's path; an error says why HiGHS cannot run (no node
// or npm, or the npm registry unreachable).
func installHiGHS(cache string) (string, error) {
	if _, err := exec.LookPath("node"); err != nil {
		return "", fmt.Errorf("highs: node not found: %w", err)
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", fmt.Errorf("highs: cache %s: %w", cache, err)
	}
	pkg := filepath.Join(cache, "node_modules", "highs", "package.json")
	if b, err := os.ReadFile(pkg); err != nil || !strings.Contains(string(b), `"version": "`+HiGHSVersion+`"`) {
		npm, err := exec.LookPath("npm")
		if err != nil {
			return "", fmt.Errorf("highs: npm not found: %w", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, npm, "install", "--prefix", cache, "--no-audit", "--no-fund", "--no-save", "highs@"+HiGHSVersion).CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("highs: npm install highs@%s (is the npm registry reachable?): %w\n%s", HiGHSVersion, err, out)
		}
	}
	script := filepath.Join(cache, "solve-highs.js")
	if err := os.WriteFile(script, []byte(highsRunner), 0o644); err != nil {
		return "", fmt.Errorf("highs: %w", err)
	}
	return script, nil
}

// runHiGHS solves the LP file with HiGHS under node.
func runHiGHS(script, lp string, limit time.Duration) result {
	out, sec := run(limit+30*time.Second, "node", script, lp, strconv.Itoa(int(math.Ceil(limit.Seconds()))))
	r, err := parseHiGHS(out)
	if err != nil {
		fmt.Fprintf(os.Stderr, "highs on %s: %v\n", lp, err)
	}
	r.sec = sec
	return r
}

// parseHiGHS reads the runner's JSON line (the last line of its output).
func parseHiGHS(out string) (result, error) {
	r := result{solver: "highs", obj: math.NaN(), bound: math.Inf(1)}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var v struct {
		Status    string   `json:"status"`
		Objective *float64 `json:"objective"`
		Primal    *float64 `json:"primal"`
		Dual      *float64 `json:"dual"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &v); err != nil {
		return r, errors.New("no result line: " + out)
	}
	r.proven = v.Status == "Optimal"
	if v.Objective != nil {
		r.obj = *v.Objective
	}
	if v.Dual != nil && !math.IsInf(*v.Dual, 0) {
		r.bound = *v.Dual
	}
	if r.proven {
		r.bound = r.obj
	}
	return r, nil
}
