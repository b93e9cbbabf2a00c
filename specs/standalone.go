package specs

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
)

// ErrNotStandalone reports a spec that must stand alone (one uploaded to a
// server) but extends or imports other files.
var ErrNotStandalone = errors.New("specs: an uploaded spec cannot use extends or imports")

// ParseStandalone reads one spec document that must stand alone, as a
// server reads an upload: it never reads another file, so nothing in the
// document can name a file on the reading machine. A document with an
// extends or imports key is rejected with ErrNotStandalone (at the key's
// position) before anything else is done; other problems are an ErrorList
// as from Parse.
func ParseStandalone(file string, data []byte) (*Spec, error) {
	file = filepath.Clean(file)
	var e errs
	doc := parseDocument(file, data, &e)
	for _, k := range doc.root.keys {
		if k.value == "extends" || k.value == "imports" {
			return nil, fmt.Errorf("%w: %s: %s: compose the spec into one file before uploading it", ErrNotStandalone, k.pos, k.value)
		}
	}
	return load(func(p string) ([]byte, error) {
		if p == file {
			return data, nil
		}
		return nil, ErrNotStandalone
	}, file)
}

// HostInputs lists, as "task T: input I: path P" and "task T: image
// oci-archive:P" lines, every host path the spec mounts or imports: task
// inputs given as a path and images (of tasks and of tests) given as an
// oci-archive file. Host paths are for operators running their own specs;
// a spec that came from a tenant must name none (its inputs and images are
// artifacts: accord data push, then artifact: sha256:…).
func HostInputs(s *Spec) []string {
	var out []string
	for _, t := range s.Tasks {
		if strings.HasPrefix(t.Image, "oci-archive:") {
			out = append(out, fmt.Sprintf("task %s: image %s", t.Name, t.Image))
		}
		for _, in := range t.Inputs {
			if in.Path != "" {
				out = append(out, fmt.Sprintf("task %s: input %s: path %s", t.Name, in.Name, in.Path))
			}
		}
	}
	for _, t := range s.Verification.Tests {
		if strings.HasPrefix(t.Image, "oci-archive:") {
			out = append(out, fmt.Sprintf("test %s: image %s", t.Name, t.Image))
		}
	}
	return out
}
