package specs

import (
	"errors"
	"fmt"
	"path/filepath"
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

// HostInputs lists, as "task T: input I: path P" lines, every task input
// the spec gives as a host path. Host paths are for operators running their
// own specs; a spec that came from a tenant must name none.
func HostInputs(s *Spec) []string {
	var out []string
	for _, t := range s.Tasks {
		for _, in := range t.Inputs {
			if in.Path != "" {
				out = append(out, fmt.Sprintf("task %s: input %s: path %s", t.Name, in.Name, in.Path))
			}
		}
	}
	return out
}
