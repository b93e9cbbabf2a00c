package witness

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/accordmesh/accord/provenance/tlog"
)

// clientTimeout bounds one add-checkpoint call when ctx has no deadline.
const clientTimeout = 30 * time.Second

// maxResponseSize bounds what a client reads from a witness.
const maxResponseSize = 64 << 10

var httpClient = &http.Client{Timeout: clientTimeout}

// Cosign submits checkpoint to the witness at base (its submission prefix,
// e.g. http://127.0.0.1:7380) with the consistency proof from oldSize, and
// returns the witness's cosignature lines (not verified: see
// VerifyCosignatures). A 409 is a *ConflictError carrying the witness's size.
func Cosign(ctx context.Context, base string, checkpoint []byte, consistency [][]byte, oldSize uint64) ([]Signature, error) {
	endpoint, err := addURL(base)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(FormatRequest(oldSize, consistency, checkpoint)))
	if err != nil {
		return nil, fmt.Errorf("witness: %s: %w", base, err)
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrUnavailable, base, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseSize+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrUnavailable, base, err)
	}
	if len(body) > maxResponseSize {
		return nil, fmt.Errorf("%w: %s: response over %d bytes", ErrMalformed, base, maxResponseSize)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		sigs, err := ParseSignatureLines(body)
		if err != nil {
			return nil, fmt.Errorf("witness: %s: response: %w", base, err)
		}
		return sigs, nil
	case http.StatusConflict:
		size, err := strconv.ParseUint(strings.TrimSuffix(string(body), "\n"), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: 409 without a size", ErrConflict, base)
		}
		return nil, &ConflictError{Size: size}
	}
	msg := strings.TrimSpace(clip(string(body)))
	switch sentinel := statusErr(resp.StatusCode); sentinel {
	case nil:
		return nil, fmt.Errorf("witness: %s: HTTP %d: %s", base, resp.StatusCode, msg)
	default:
		return nil, fmt.Errorf("%w: %s: %s", sentinel, base, msg)
	}
}

func statusErr(code int) error {
	switch {
	case code == http.StatusBadRequest:
		return ErrMalformed
	case code == http.StatusNotFound:
		return ErrUnknownLog
	case code == http.StatusForbidden:
		return ErrLogSignature
	case code == http.StatusUnprocessableEntity:
		return ErrProof
	case code >= 500:
		return ErrUnavailable
	}
	return nil
}

func addURL(base string) (string, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("%w: witness URL %q (want http(s)://host[:port][/prefix])", ErrMalformed, base)
	}
	return strings.TrimSuffix(base, "/") + "/add-checkpoint", nil
}

// Update brings the witness at base up to date with the log: it submits
// the log's current checkpoint (info, or l.Info when nil) with a
// consistency proof from oldSize (the witness's size as the caller last
// knew it; 0 when unknown) and, on a 409, once more from the size the
// witness reports. It returns the cosignatures and the checkpoint they
// cover.
func Update(ctx context.Context, base string, l tlog.Log, info *tlog.Info, oldSize uint64) ([]Signature, *tlog.Info, error) {
	if info == nil {
		var err error
		if info, err = l.Info(ctx); err != nil {
			return nil, nil, fmt.Errorf("witness: log info: %w", err)
		}
	}
	size := uint64(info.TreeSize)
	for try := 0; ; try++ {
		if oldSize > size {
			return nil, nil, fmt.Errorf("%w: %s has cosigned size %d, beyond the log's current size %d (a rollback, or a stale log view)", ErrConflict, base, oldSize, size)
		}
		hashes, err := logProof(ctx, l, oldSize, size)
		if err != nil {
			return nil, nil, err
		}
		sigs, err := Cosign(ctx, base, []byte(info.SignedCheckpoint), hashes, oldSize)
		var conflict *ConflictError
		if try == 0 && errors.As(err, &conflict) && conflict.Size != oldSize {
			oldSize = conflict.Size
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		return sigs, info, nil
	}
}

// logProof fetches the consistency proof old → size from l (none when old
// is 0 or equal to size).
func logProof(ctx context.Context, l tlog.Log, old, size uint64) ([][]byte, error) {
	if old == 0 || old == size {
		return nil, nil
	}
	hs, err := l.ConsistencyProof(ctx, int64(old), int64(size))
	if err != nil {
		return nil, fmt.Errorf("witness: consistency proof %d → %d: %w", old, size, err)
	}
	out := make([][]byte, len(hs))
	for i, h := range hs {
		if out[i], err = hex.DecodeString(h); err != nil {
			return nil, fmt.Errorf("witness: log's consistency proof hash %q: %w", h, err)
		}
	}
	return out, nil
}

// AppendSignatures returns note with sigs appended as signature lines
// (note must be a signed note, ending in its signature lines).
func AppendSignatures(signedNote []byte, sigs []Signature) []byte {
	out := append([]byte(nil), signedNote...)
	for _, s := range sigs {
		out = append(out, s.Line()...)
	}
	return out
}
