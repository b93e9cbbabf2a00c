package runtimes

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/accordmesh/accord/internal/atomicfile"
)

// MaxOutputBytes bounds one collected output file, so that a task cannot
// fill the worker's disk through Collect.
const MaxOutputBytes int64 = 1 << 40

// OutputPath is where the output rel (slash-separated, relative to the
// task's output directory) is collected under dir. A path that would
// leave dir fails with ErrInvalid.
func OutputPath(dir, rel string) (string, error) {
	local := filepath.Join(dir, filepath.FromSlash(rel))
	if !strings.HasPrefix(local, filepath.Clean(dir)+string(filepath.Separator)) {
		return "", fmt.Errorf("%w: output %q escapes %s", ErrInvalid, rel, dir)
	}
	return local, nil
}

// SaveOutput copies the output rel from src to local (see OutputPath),
// atomically, digesting it with sha256 as it streams, and describes the
// copy. It creates local's directory. A src longer than max bytes fails
// with ErrOutput and leaves nothing at local.
func SaveOutput(local, rel string, src io.Reader, max int64) (Output, error) {
	if err := os.MkdirAll(filepath.Dir(local), 0o755); err != nil {
		return Output{}, err
	}
	limit := max
	if limit < math.MaxInt64 {
		limit++ // one byte more tells a src of exactly max bytes from a longer one
	}
	h := sha256.New()
	var n int64
	err := atomicfile.Write(local, 0o600, func(w io.Writer) error {
		var err error
		n, err = io.Copy(io.MultiWriter(w, h), io.LimitReader(src, limit))
		if err == nil && n > max {
			err = fmt.Errorf("%w: %s is larger than %d bytes", ErrOutput, rel, max)
		}
		return err
	})
	if err != nil {
		return Output{}, err
	}
	return Output{Path: rel, Size: n, SHA256: hex.EncodeToString(h.Sum(nil)), Local: local}, nil
}
