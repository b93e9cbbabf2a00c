package models

import (
	"fmt"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"
)

// File is one file of the model.
type File struct {
	// Path is relative to the model's root, "/"-separated, clean.
	Path   string `json:"path"`
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
	// Kind is weights, config, doc, code or dataset; when empty it is
	// inferred from the path (see KindOf).
	Kind FileKind `json:"kind,omitempty"`
}

// FileKind is what a file is to the model; it picks the ModelPack layer
// media type.
type FileKind string

// File kinds, as ModelPack names its layers.
const (
	KindWeights FileKind = "weights"
	// KindConfig is the weights' configuration: config.json, tokenizer.
	KindConfig  FileKind = "config"
	KindDoc     FileKind = "doc"
	KindCode    FileKind = "code"
	KindDataset FileKind = "dataset"
)

func (k FileKind) known() bool {
	switch k {
	case KindWeights, KindConfig, KindDoc, KindCode, KindDataset:
		return true
	}
	return false
}

// kindByExt infers a file's kind from its extension.
var kindByExt = map[string]FileKind{
	".safetensors": KindWeights, ".bin": KindWeights, ".pt": KindWeights, ".pth": KindWeights,
	".gguf": KindWeights, ".onnx": KindWeights, ".h5": KindWeights, ".ckpt": KindWeights,
	".msgpack": KindWeights, ".tflite": KindWeights, ".pb": KindWeights, ".npz": KindWeights,
	".json": KindConfig, ".yaml": KindConfig, ".yml": KindConfig, ".model": KindConfig,
	".tiktoken": KindConfig,
	".md":       KindDoc, ".txt": KindDoc, ".rst": KindDoc, ".pdf": KindDoc,
	".py": KindCode, ".sh": KindCode, ".ipynb": KindCode, ".go": KindCode,
	".csv": KindDataset, ".jsonl": KindDataset, ".parquet": KindDataset, ".arrow": KindDataset,
}

// kindByName infers the kind of extension-less well-known files.
var kindByName = map[string]FileKind{
	"LICENSE": KindDoc, "LICENCE": KindDoc, "NOTICE": KindDoc, "README": KindDoc, "Modelfile": KindConfig,
}

// KindOf returns the file's declared kind, or the kind inferred from its
// name; an error when neither says.
func KindOf(f File) (FileKind, error) {
	if f.Kind != "" {
		if !f.Kind.known() {
			return "", fmt.Errorf("kind %q is not weights, config, doc, code or dataset", clip(string(f.Kind)))
		}
		return f.Kind, nil
	}
	base := path.Base(f.Path)
	if k, ok := kindByName[base]; ok {
		return k, nil
	}
	if k, ok := kindByExt[strings.ToLower(path.Ext(base))]; ok {
		return k, nil
	}
	return "", fmt.Errorf("cannot infer the kind of %q: set kind", clip(f.Path))
}

// CheckPath checks that p is a safe relative path: UTF-8, no control
// characters or backslashes, not absolute, clean, no "." or ".." parts, at
// most MaxPathLen bytes and 255 bytes per part.
func CheckPath(p string) error {
	if p == "" || len(p) > MaxPathLen {
		return fmt.Errorf("path must be 1-%d bytes", MaxPathLen)
	}
	if !utf8.ValidString(p) {
		return fmt.Errorf("path %q is not UTF-8", clip(p))
	}
	for _, r := range p {
		if unicode.IsControl(r) || r == '\\' {
			return fmt.Errorf("path %q has a control character or backslash", clip(p))
		}
	}
	if strings.HasPrefix(p, "/") || path.Clean(p) != p {
		return fmt.Errorf("path %q is not a clean relative path", clip(p))
	}
	for _, part := range strings.Split(p, "/") {
		if part == "." || part == ".." {
			return fmt.Errorf("path %q leaves the model directory", clip(p))
		}
		if len(part) > 255 {
			return fmt.Errorf("path %q has a part longer than 255 bytes", clip(p))
		}
	}
	return nil
}

func (m *Manifest) validateFiles() error {
	if len(m.Files) == 0 {
		return fieldErr("files", "a model has at least one file")
	}
	if len(m.Files) > MaxFiles {
		return fieldErr("files", "%d files, at most %d", len(m.Files), MaxFiles)
	}
	paths := make(map[string]bool, len(m.Files))
	for i, f := range m.Files {
		fld := fmt.Sprintf("files[%d]", i)
		if err := CheckPath(f.Path); err != nil {
			return fieldErr(fld+".path", "%v", err)
		}
		if paths[f.Path] {
			return fieldErr(fld+".path", "%q listed twice", f.Path)
		}
		paths[f.Path] = true
		if err := CheckDigest(f.Digest); err != nil {
			return fieldErr(fld+".digest", "%v", err)
		}
		if f.Size < 0 || f.Size > MaxFileSize {
			return fieldErr(fld+".size", "%d is not in 0..%d", f.Size, int64(MaxFileSize))
		}
		if _, err := KindOf(f); err != nil {
			return fieldErr(fld+".kind", "%v", err)
		}
	}
	// A path may not be both a file and a directory ("a" and "a/b").
	for p := range paths {
		for d := path.Dir(p); d != "."; d = path.Dir(d) {
			if paths[d] {
				return fieldErr("files", "%q is a file and also the directory of %q", d, clip(p))
			}
		}
	}
	return nil
}
