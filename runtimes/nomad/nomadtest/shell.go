package nomadtest

import (
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/nomad/api"
)

// ShellBehavior scripts an allocation from its task's command when that is
// `sh -c SCRIPT` (docker entrypoint+args or exec command+args), so that the
// same test suite can run against this double and a real agent. It knows
// `;`- or newline-separated statements of four kinds:
//
//	echo WORDS                          → stdout
//	echo WORDS > $ACCORD_OUTPUT_DIR/F   → output file F
//	sleep SECONDS                       → adds to the run time (scaled by speed)
//	exit N                              → exit code, ends the script
//
// speed divides sleeps (speed 100 turns "sleep 1" into 10ms). Other
// commands leave a zero exit after the default run time.
func ShellBehavior(speed float64) Behavior {
	if speed <= 0 {
		speed = 1
	}
	return func(job *api.Job, _ *api.Allocation, _ int) Run {
		t := job.TaskGroups[0].Tasks[0]
		script := shellScript(t)
		run := Run{Files: map[string][]byte{}}
		var sleep time.Duration
		for _, stmt := range strings.FieldsFunc(script, func(r rune) bool { return r == ';' || r == '\n' }) {
			f := strings.Fields(stmt)
			if len(f) == 0 {
				continue
			}
			switch f[0] {
			case "echo":
				words, target := f[1:], ""
				for i, w := range words {
					if w == ">" && i+1 < len(words) {
						target = words[i+1]
						words = words[:i]
						break
					}
				}
				line := strings.Trim(strings.Join(words, " "), `"'`) + "\n"
				if target == "" {
					run.Stdout += line
					continue
				}
				for _, prefix := range []string{"$ACCORD_OUTPUT_DIR/", "${ACCORD_OUTPUT_DIR}/", "/out/"} {
					if rel, ok := strings.CutPrefix(target, prefix); ok {
						run.Files["alloc/data/out/"+rel] = append(run.Files["alloc/data/out/"+rel], line...)
					}
				}
			case "sleep":
				if len(f) > 1 {
					if s, err := strconv.ParseFloat(f[1], 64); err == nil {
						sleep += time.Duration(s / speed * float64(time.Second))
					}
				}
			case "exit":
				if len(f) > 1 {
					run.ExitCode, _ = strconv.Atoi(f[1])
				}
				run.RunFor = max(sleep, time.Millisecond)
				return run
			}
		}
		if sleep > 0 {
			run.RunFor = sleep
		}
		return run
	}
}

func shellScript(t *api.Task) string {
	var argv []string
	switch t.Driver {
	case "docker":
		if ep, ok := t.Config["entrypoint"].([]string); ok {
			argv = append(argv, ep...)
		}
		if args, ok := t.Config["args"].([]string); ok {
			argv = append(argv, args...)
		}
		if ep, ok := t.Config["entrypoint"].([]any); ok {
			argv = append(argv, anyStrings(ep)...)
		}
		if args, ok := t.Config["args"].([]any); ok {
			argv = append(argv, anyStrings(args)...)
		}
	default:
		if c, ok := t.Config["command"].(string); ok {
			argv = append(argv, c)
		}
		if args, ok := t.Config["args"].([]any); ok {
			argv = append(argv, anyStrings(args)...)
		}
		if args, ok := t.Config["args"].([]string); ok {
			argv = append(argv, args...)
		}
	}
	if len(argv) == 3 && (argv[0] == "sh" || argv[0] == "/bin/sh") && argv[1] == "-c" {
		return argv[2]
	}
	return ""
}

func anyStrings(v []any) []string {
	out := make([]string, 0, len(v))
	for _, x := range v {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}
