package nomadtest

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/hashicorp/nomad/api"
)

// TrainerBehavior scripts allocations of the example workload (`trainer
// prepare|train|eval`, see docs/conventions) by its file contract, so that a
// pipeline such as examples/llm-finetune.md can flow through the double:
// prepare writes dataset.csv, train writes model.json and metrics.json,
// eval writes eval.json. It never runs the image. A --data or --model
// argument must name a path the job mounts (an input bound read-only in
// the docker volumes), else the task fails with exit 1 as the real trainer
// would on a missing file; that checks the runtime's input plumbing.
// Anything else exits 0 with no output.
func TrainerBehavior() Behavior {
	return func(job *api.Job, _ *api.Allocation, _ int) Run {
		t := job.TaskGroups[0].Tasks[0]
		argv := shellArgv(t)
		if len(argv) < 2 || !strings.HasSuffix(argv[0], "trainer") {
			return Run{}
		}
		flags := map[string]string{}
		for i := 2; i+1 < len(argv); i++ {
			if strings.HasPrefix(argv[i], "--") {
				flags[strings.TrimPrefix(argv[i], "--")] = argv[i+1]
				i++
			}
		}
		mounted := map[string]bool{}
		if vols, ok := t.Config["volumes"].([]any); ok {
			for _, v := range vols {
				if s, ok := v.(string); ok {
					if parts := strings.Split(s, ":"); len(parts) >= 2 {
						mounted[parts[1]] = true
					}
				}
			}
		}
		for _, f := range []string{"data", "model"} {
			if p, ok := flags[f]; ok && !mounted[p] {
				return Run{Stderr: fmt.Sprintf("trainer: open %s: no such file or directory\n", p), ExitCode: 1}
			}
		}
		out := func(name string) string { return "alloc/data/out/" + name }
		samples, _ := strconv.Atoi(flags["samples"])
		if samples <= 0 {
			samples = 1000
		}
		epochs, _ := strconv.Atoi(flags["epochs"])
		if epochs <= 0 {
			epochs = 100
		}
		switch argv[1] {
		case "prepare":
			var b strings.Builder
			b.WriteString("x1,x2,y\n")
			for i := range min(samples, 200) {
				fmt.Fprintf(&b, "%d,%d,%d\n", i%7, i%11, (i%7+i%11)%2)
			}
			return Run{Stdout: fmt.Sprintf("prepared %d samples\n", samples), Files: map[string][]byte{out("dataset.csv"): []byte(b.String())}}
		case "train":
			metrics := fmt.Sprintf(`{"accuracy":0.93,"loss":0.21,"epochs":%d,"samples":%d}`, epochs, samples)
			return Run{Stdout: fmt.Sprintf("trained %d epochs\n", epochs), Files: map[string][]byte{
				out("model.json"): []byte(`{"weights":[0.5,-0.25],"bias":0.1}`), out("metrics.json"): []byte(metrics)}}
		case "eval":
			return Run{Stdout: "evaluated\n", Files: map[string][]byte{out("eval.json"): []byte(`{"accuracy":0.92,"loss":0.22}`)}}
		}
		return Run{}
	}
}

// shellArgv is the task's argv as the docker or exec driver would run it.
func shellArgv(t *api.Task) []string {
	var argv []string
	for _, k := range []string{"entrypoint", "command", "args"} {
		switch v := t.Config[k].(type) {
		case []string:
			argv = append(argv, v...)
		case []any:
			argv = append(argv, anyStrings(v)...)
		case string:
			argv = append(argv, v)
		}
	}
	return argv
}
