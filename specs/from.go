package specs

import (
	"fmt"
	"strings"
)

// ParseFrom splits an input's from reference, "<task>:<output path>", at
// its first colon. The task is a task name (an imported one reads
// "<alias>.<task>"); the output path is a clean relative path, as every
// declared output is. Whether the task exists and declares that output is
// for the spec as a whole to say (Load reports both). Errors wrap
// ErrInvalid.
func ParseFrom(s string) (task, path string, err error) {
	task, path, problem := parseFrom(s)
	if problem != "" {
		return "", "", fmt.Errorf("%w: from %q %s", ErrInvalid, s, problem)
	}
	return task, path, nil
}

// parseFrom is ParseFrom for the decoder, which reports the problem at the
// reference's position.
func parseFrom(s string) (task, path, problem string) {
	task, path, ok := strings.Cut(s, ":")
	switch {
	case !ok || task == "" || path == "":
		return "", "", `must be "<task>:<output path>"`
	case !validRelPath(path):
		return "", "", "must name a clean relative output path"
	}
	return task, path, ""
}
