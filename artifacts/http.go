package artifacts

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// HTTP is the control plane's store as a provider agent on another machine
// reaches it: the API's provider routes (GET and HEAD /v1/blobs/{digest},
// POST /v1/blobs, POST /v1/outputs) with the agent's provider token. The
// control plane answers only for blobs the jobs awarded to the agent need
// (see AwardJob). Every read is bounded and its bytes verified against
// the digest, so neither the server nor anything between can substitute
// content; a mismatch is ErrCorrupt.
type HTTP struct {
	// BaseURL is the API's address (http(s)://host:port).
	BaseURL string
	// Token is the agent's API token (role provider).
	Token string
	// Client defaults to one with no overall timeout: reads are bounded
	// by their context and size instead, since blobs can be large.
	Client *http.Client
	// MaxBlob bounds one blob Materialize copies (a file input, one file
	// of a tree, an image archive); default DefaultMaxHTTPBlob.
	MaxBlob int64
}

// DefaultMaxHTTPBlob is the default bound on one blob an agent fetches: the
// API's own bound on an upload (apiserver.DefaultMaxData).
const DefaultMaxHTTPBlob = 1 << 30

// KindHeader carries a blob's kind (KindFile or KindTree) in the answer to
// HEAD and GET /v1/blobs/{digest}.
const KindHeader = "X-Accord-Kind"

// BlobResponse is the answer to POST /v1/blobs and /v1/outputs.
type BlobResponse struct {
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
	Kind   string `json:"kind"`
	Tenant string `json:"tenant,omitempty"` // the tenant an output was granted to
}

// maxRetries bounds the retries of a request the server rate-limited.
const maxRetries = 8

// Get implements Store: the blob, at most limit bytes, verified.
func (h HTTP) Get(ctx context.Context, digest string, limit int64) ([]byte, error) {
	if _, err := hexOf(digest); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := h.fetch(ctx, digest, -1, limit, &buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Put implements Store: b is stored on the control plane, readable by
// this agent only. Idempotent (content-addressed).
func (h HTTP) Put(ctx context.Context, b []byte) (string, error) {
	want := Digest(b)
	res, err := h.post(ctx, "/v1/blobs", func() (io.ReadCloser, int64, error) {
		return io.NopCloser(bytes.NewReader(b)), int64(len(b)), nil
	})
	if err != nil {
		return "", err
	}
	if res.Digest != want {
		return "", fmt.Errorf("%w: stored %s as %s", ErrCorrupt, want, res.Digest)
	}
	return want, nil
}

// PutOutput pushes the file at path, a collected output of job, to the
// control plane, which grants it to the job's tenant (and to this agent)
// if the job is this agent's. It returns the digest and size the server
// computed. Idempotent (content-addressed).
func (h HTTP) PutOutput(ctx context.Context, jobID, path string) (BlobResponse, error) {
	if err := checkJobID(jobID); err != nil {
		return BlobResponse{}, err
	}
	return h.post(ctx, "/v1/outputs?job="+url.QueryEscape(jobID), func() (io.ReadCloser, int64, error) {
		f, err := os.Open(path)
		if err != nil {
			return nil, 0, err
		}
		fi, err := f.Stat()
		if err != nil || !fi.Mode().IsRegular() {
			f.Close()
			return nil, 0, fmt.Errorf("%s is not a regular file (%v)", path, err)
		}
		return f, fi.Size(), nil
	})
}

// Owns implements activities.InputStore: whether the control plane granted
// this agent digest as tenant's input (for a job of tenant's awarded to
// it).
func (h HTTP) Owns(tenant, digest string) (bool, error) {
	if _, err := hexOf(digest); err != nil {
		return false, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resp, err := h.do(ctx, http.MethodHead, blobPath(digest)+"?tenant="+url.QueryEscape(tenant), nil)
	if err != nil {
		return false, err
	}
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return true, nil
	case http.StatusNotFound:
		return false, nil
	}
	return false, statusErr("owns "+digest, resp)
}

// Kind reports whether digest is a file or a tree, as the server says; a
// tree is validated as hostile input when it is read (ReadTree).
func (h HTTP) Kind(ctx context.Context, digest string) (string, error) {
	if _, err := hexOf(digest); err != nil {
		return "", err
	}
	resp, err := h.do(ctx, http.MethodHead, blobPath(digest), nil)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", statusErr("kind of "+digest, resp)
	}
	switch k := resp.Header.Get(KindHeader); k {
	case KindFile, KindTree:
		return k, nil
	}
	return "", fmt.Errorf("artifacts: kind of %s: server answered no valid %s", digest, KindHeader)
}

// ReadTree returns the validated manifest with digest.
func (h HTTP) ReadTree(ctx context.Context, digest string) (Tree, error) {
	b, err := h.Get(ctx, digest, MaxManifestSize)
	if err != nil {
		return Tree{}, err
	}
	t, err := ParseTree(b)
	if err != nil {
		return Tree{}, fmt.Errorf("%s: %w", digest, err)
	}
	return t, nil
}

// Materialize implements activities.InputStore as Local.Materialize does,
// reading every blob over HTTP: verified, bounded, written under a
// temporary name and renamed into place.
func (h HTTP) Materialize(ctx context.Context, digest, dst string) (string, error) {
	return materialize(ctx, h, digest, dst)
}

func (h HTTP) copyBlob(ctx context.Context, digest string, size int64, w io.Writer) error {
	limit := h.MaxBlob
	if limit <= 0 {
		limit = DefaultMaxHTTPBlob
	}
	if size >= 0 {
		limit = size
	}
	return h.fetch(ctx, digest, size, limit, w)
}

// fetch streams the blob to w: at most limit bytes, exactly size when
// size >= 0, hashing to digest.
func (h HTTP) fetch(ctx context.Context, digest string, size, limit int64, w io.Writer) error {
	resp, err := h.do(ctx, http.MethodGet, blobPath(digest), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return statusErr("get "+digest, resp)
	}
	if resp.ContentLength > limit {
		return fmt.Errorf("%w: %s is %d bytes, over %d", ErrTooLarge, digest, resp.ContentLength, limit)
	}
	sum := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, sum), io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return fmt.Errorf("artifacts: get %s: %w", digest, err)
	}
	switch {
	case n > limit:
		return fmt.Errorf("%w: %s is over %d bytes", ErrTooLarge, digest, limit)
	case size >= 0 && n != size, "sha256:"+hex.EncodeToString(sum.Sum(nil)) != digest:
		return fmt.Errorf("%w: %s", ErrCorrupt, digest)
	}
	return nil
}

// post uploads a body and decodes the server's answer.
func (h HTTP) post(ctx context.Context, path string, body func() (io.ReadCloser, int64, error)) (BlobResponse, error) {
	resp, err := h.do(ctx, http.MethodPost, path, body)
	if err != nil {
		return BlobResponse{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return BlobResponse{}, statusErr("push", resp)
	}
	var out BlobResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&out); err != nil {
		return BlobResponse{}, fmt.Errorf("artifacts: push: decode answer: %w", err)
	}
	if _, err := hexOf(out.Digest); err != nil {
		return BlobResponse{}, fmt.Errorf("artifacts: push: answer: %w", err)
	}
	return out, nil
}

// do sends one request, retrying while the server answers 429 (at most
// maxRetries times, waiting what Retry-After says, at most 10 s each).
func (h HTTP) do(ctx context.Context, method, path string, body func() (io.ReadCloser, int64, error)) (*http.Response, error) {
	hc := h.Client
	if hc == nil {
		hc = http.DefaultClient
	}
	for try := 0; ; try++ {
		req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(h.BaseURL, "/")+path, nil)
		if err != nil {
			return nil, fmt.Errorf("artifacts: %s %s: %w", method, path, err)
		}
		if body != nil {
			rc, n, err := body()
			if err != nil {
				return nil, fmt.Errorf("artifacts: %s %s: %w", method, path, err)
			}
			req.Body, req.ContentLength = rc, n
			req.Header.Set("Content-Type", "application/octet-stream")
		}
		req.Header.Set("Authorization", "Bearer "+h.Token)
		resp, err := hc.Do(req)
		if err != nil {
			return nil, fmt.Errorf("artifacts: %s %s: %w", method, path, err)
		}
		if resp.StatusCode != http.StatusTooManyRequests || try >= maxRetries {
			return resp, nil
		}
		wait := time.Second
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
			wait = min(time.Duration(s)*time.Second, 10*time.Second)
		}
		resp.Body.Close()
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("artifacts: %s %s: %w", method, path, ctx.Err())
		case <-time.After(wait):
		}
	}
}

func blobPath(digest string) string { return "/v1/blobs/" + url.PathEscape(digest) }

// statusErr maps an error answer to the package's sentinels: 404 is
// ErrNotFound (also what the server answers for a blob this agent may not
// read), 403 and 401 ErrRefused, 413 ErrTooLarge.
func statusErr(what string, resp *http.Response) error {
	var e struct {
		Error string `json:"error"`
	}
	_ = json.NewDecoder(io.LimitReader(resp.Body, 4<<10)).Decode(&e)
	msg := fmt.Sprintf("%s: %s", resp.Status, e.Error)
	switch resp.StatusCode {
	case http.StatusNotFound:
		return fmt.Errorf("%w: %s: %s", ErrNotFound, what, msg)
	case http.StatusForbidden, http.StatusUnauthorized:
		return fmt.Errorf("%w: %s: %s", ErrRefused, what, msg)
	case http.StatusRequestEntityTooLarge:
		return fmt.Errorf("%w: %s: %s", ErrTooLarge, what, msg)
	}
	return errors.New("artifacts: " + what + ": " + msg)
}
