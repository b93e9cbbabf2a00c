// Package rekorv1 is the tlog.Log backend for a real Rekor v1 server
// (accord's --rekor-url).
//
// Envelopes are uploaded as Rekor "intoto" v0.0.2 entries, which keep the
// DSSE payload when the server runs with attestation storage, or optionally
// as "dsse" v0.0.1 entries (hashes and signatures only). Rekor verifies the
// envelope's signatures with the given public key before it logs anything.
//
// Search goes through Rekor's search index (POST /api/v1/index/retrieve).
// Rekor indexes the signer of intoto and dsse entries as
// "sha256:<hex of sha256(canonical PEM)>", not under the key hash its own
// publicKey query computes, so a key query is sent as that hash.
//
// The client never retries by itself: the Temporal activity that uploads an
// attestation retries durably. Failures that a retry may cure (the server
// cannot be reached, times out, or answers 5xx or 429) wrap
// tlog.ErrUnavailable; a refused envelope wraps tlog.ErrInvalidEntry.
package rekorv1

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/go-openapi/runtime"
	rclient "github.com/sigstore/rekor/pkg/client"
	"github.com/sigstore/rekor/pkg/generated/client"
	"github.com/sigstore/rekor/pkg/generated/client/entries"
	"github.com/sigstore/rekor/pkg/generated/client/index"
	"github.com/sigstore/rekor/pkg/generated/client/pubkey"
	rtlog "github.com/sigstore/rekor/pkg/generated/client/tlog"
	"github.com/sigstore/rekor/pkg/generated/models"
	"github.com/sigstore/rekor/pkg/pki/x509"
	"github.com/sigstore/rekor/pkg/types"
	"github.com/sigstore/rekor/pkg/types/dsse"
	dssev001 "github.com/sigstore/rekor/pkg/types/dsse/v0.0.1"
	"github.com/sigstore/rekor/pkg/types/intoto"
	intotov002 "github.com/sigstore/rekor/pkg/types/intoto/v0.0.2"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/accordmesh/accord/provenance/tlog"
)

// Entry kinds Upload can create.
const (
	// KindIntoto is Rekor's intoto v0.0.2 entry: the payload is kept
	// (with attestation storage on), so Get returns the statement.
	KindIntoto = intoto.KIND
	// KindDSSE is Rekor's dsse v0.0.1 entry: hashes and signatures only.
	KindDSSE = dsse.KIND
)

// DefaultTimeout bounds each request to the server.
const DefaultTimeout = 30 * time.Second

// ErrBadURL: the Rekor URL is not an absolute http(s) URL.
var ErrBadURL = errors.New("rekorv1: bad Rekor URL")

// ErrInsecureURL: a plain http:// Rekor URL without WithInsecure. Without
// TLS anyone on the path can answer for the log, so plain HTTP is an
// explicit choice even on loopback.
var ErrInsecureURL = errors.New("rekorv1: plain-http Rekor URL")

// Option configures New.
type Option func(*options)

type options struct {
	kind      string
	timeout   time.Duration
	userAgent string
	retries   uint
	insecure  bool
	token     string
}

// WithEntryKind selects the entry kind Upload creates: KindIntoto (the
// default) or KindDSSE.
func WithEntryKind(kind string) Option { return func(o *options) { o.kind = kind } }

// WithTimeout bounds each request (DefaultTimeout when unset).
func WithTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option { return func(o *options) { o.userAgent = ua } }

// WithInsecure allows an http:// URL (a log on this machine, or a test).
func WithInsecure() Option { return func(o *options) { o.insecure = true } }

// WithToken sends token as "Authorization: Bearer <token>" on every
// request: the writer's credential for a log that authenticates uploads
// (`accord log serve`). Reads of such a log need none.
func WithToken(token string) Option { return func(o *options) { o.token = token } }

// WithRetries lets the HTTP client retry transient failures itself (default
// 0: callers retry).
func WithRetries(n uint) Option { return func(o *options) { o.retries = n } }

type rekorLog struct {
	url     string
	c       *client.Rekor
	kind    string
	version string
	timeout time.Duration
}

// New returns a tlog.Log that talks to the Rekor v1 server at rekorURL
// (e.g. "https://rekor.sigstore.dev"; "http://127.0.0.1:3000" only with
// WithInsecure). It does not contact the server, and it does not decide
// whether the log's key is trusted: provenance.CheckLogKey does.
func New(rekorURL string, opts ...Option) (tlog.Log, error) {
	o := options{kind: KindIntoto, timeout: DefaultTimeout, userAgent: "accord-rekorv1"}
	for _, opt := range opts {
		opt(&o)
	}
	u, err := url.Parse(rekorURL)
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %v", ErrBadURL, rekorURL, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: %q: want http(s)://host[:port]", ErrBadURL, rekorURL)
	}
	if u.Scheme == "http" && !o.insecure {
		return nil, fmt.Errorf("%w: %s is not TLS, so anyone on the way can answer for the log; use https://, or pass --insecure to accept plain HTTP (a log on this machine, a test)", ErrInsecureURL, u.Redacted())
	}
	if u.Path == "/" {
		u.Path = ""
	}
	l := &rekorLog{url: u.String(), kind: o.kind, timeout: o.timeout}
	switch o.kind {
	case KindIntoto:
		l.version = intotov002.APIVERSION
	case KindDSSE:
		l.version = dssev001.APIVERSION
	default:
		return nil, fmt.Errorf("rekorv1: unsupported entry kind %q (want %q or %q)", o.kind, KindIntoto, KindDSSE)
	}
	if l.timeout <= 0 {
		l.timeout = DefaultTimeout
	}
	if strings.ContainsAny(o.token, " \t\r\n") {
		return nil, fmt.Errorf("rekorv1: token holds white space or a line break (a token file with more than one line?)")
	}
	copts := []rclient.Option{
		rclient.WithRetryCount(o.retries),
		rclient.WithUserAgent(o.userAgent),
		rclient.WithNoDisableKeepalives(true),
	}
	if o.token != "" {
		copts = append(copts, rclient.WithHeaders(map[string][]string{"Authorization": {"Bearer " + o.token}}))
	}
	l.c, err = rclient.GetRekorClient(l.url, copts...)
	if err != nil {
		return nil, fmt.Errorf("rekorv1: client for %s: %w", l.url, err)
	}
	return l, nil
}

func (l *rekorLog) Kind() string { return tlog.KindRekor }

// Upload logs envelope as an entry of the configured kind. Idempotent: the
// same envelope and key make the same entry, which Rekor refuses with 409
// Conflict and a pointer to the existing entry; Upload then returns that
// entry, so a retried activity never logs an attestation twice.
func (l *rekorLog) Upload(ctx context.Context, envelope, publicKeyPEM []byte) (*tlog.Entry, error) {
	if len(envelope) == 0 {
		return nil, fmt.Errorf("rekorv1: upload: %w: empty envelope", tlog.ErrInvalidEntry)
	}
	if len(publicKeyPEM) == 0 {
		return nil, fmt.Errorf("rekorv1: upload: %w: empty public key", tlog.ErrInvalidEntry)
	}
	pe, err := types.NewProposedEntry(ctx, l.kind, l.version, types.ArtifactProperties{
		ArtifactBytes:  envelope,
		PublicKeyBytes: [][]byte{publicKeyPEM},
	})
	if err != nil {
		return nil, fmt.Errorf("rekorv1: upload: %w: %v", tlog.ErrInvalidEntry, err)
	}
	params := entries.NewCreateLogEntryParamsWithContext(ctx).WithTimeout(l.timeout).WithProposedEntry(pe)
	resp, err := l.c.Entries.CreateLogEntry(params)
	if err != nil {
		var conflict *entries.CreateLogEntryConflict
		if errors.As(err, &conflict) {
			uuid := path.Base(conflict.Location.String())
			if !isUUID(uuid) {
				return nil, fmt.Errorf("rekorv1: upload: conflict without a usable entry location %q", conflict.Location)
			}
			e, err := l.Get(ctx, uuid)
			if err != nil {
				return nil, fmt.Errorf("rekorv1: upload: fetch existing entry: %w", err)
			}
			return e, nil
		}
		return nil, l.classify(ctx, "upload", err, tlog.ErrInvalidEntry)
	}
	return oneEntry("upload", resp.Payload, "")
}

// Get returns an entry by UUID with a fresh inclusion proof.
func (l *rekorLog) Get(ctx context.Context, uuid string) (*tlog.Entry, error) {
	uuid = strings.ToLower(strings.TrimSpace(uuid))
	if !isUUID(uuid) {
		return nil, fmt.Errorf("rekorv1: get: %w: malformed uuid %q (want 64 or 80 hex digits)", tlog.ErrNotFound, uuid)
	}
	params := entries.NewGetLogEntryByUUIDParamsWithContext(ctx).WithTimeout(l.timeout).WithEntryUUID(uuid)
	resp, err := l.c.Entries.GetLogEntryByUUID(params)
	if err != nil {
		return nil, l.classify(ctx, "get "+uuid, err, tlog.ErrNotFound)
	}
	return oneEntry("get "+uuid, resp.Payload, uuid)
}

// GetByIndex returns the entry at a log index with an inclusion proof.
func (l *rekorLog) GetByIndex(ctx context.Context, i int64) (*tlog.Entry, error) {
	if i < 0 {
		return nil, fmt.Errorf("rekorv1: get index %d: %w: negative index", i, tlog.ErrNotFound)
	}
	params := entries.NewGetLogEntryByIndexParamsWithContext(ctx).WithTimeout(l.timeout).WithLogIndex(i)
	resp, err := l.c.Entries.GetLogEntryByIndex(params)
	if err != nil {
		return nil, l.classify(ctx, fmt.Sprintf("get index %d", i), err, tlog.ErrNotFound)
	}
	e, err := oneEntry(fmt.Sprintf("get index %d", i), resp.Payload, "")
	if err != nil {
		return nil, err
	}
	if e.LogIndex == nil || *e.LogIndex != i {
		return nil, fmt.Errorf("rekorv1: get index %d: server returned an entry with another index", i)
	}
	return e, nil
}

var sha256Ref = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// Search asks Rekor's index. A key is searched by the hash Rekor indexes it
// under; a query with both fields makes two lookups and intersects them.
func (l *rekorLog) Search(ctx context.Context, q tlog.Query) ([]string, error) {
	var hashes []string
	if q.Hash != "" {
		h := strings.ToLower(q.Hash)
		if !sha256Ref.MatchString(h) {
			return nil, fmt.Errorf("rekorv1: search: malformed hash %q (want sha256:<64 hex>)", q.Hash)
		}
		hashes = append(hashes, h)
	}
	if len(q.PublicKeyPEM) > 0 {
		h, err := KeyIndexHash(q.PublicKeyPEM)
		if err != nil {
			return nil, fmt.Errorf("rekorv1: search: %w", err)
		}
		hashes = append(hashes, h)
	}
	if len(hashes) == 0 {
		return nil, errors.New("rekorv1: search: empty query")
	}
	var result []string
	for i, h := range hashes {
		params := index.NewSearchIndexParamsWithContext(ctx).WithTimeout(l.timeout).
			WithQuery(&models.SearchIndex{Hash: h})
		resp, err := l.c.Index.SearchIndex(params)
		if err != nil {
			return nil, l.classify(ctx, "search", err, nil)
		}
		got := normalize(resp.Payload)
		if i == 0 {
			result = got
		} else {
			result = intersect(result, got)
		}
	}
	return result, nil
}

// KeyIndexHash is the search-index key under which Rekor files intoto and
// dsse entries signed by publicKeyPEM: "sha256:" + hex(sha256(canonical PEM)).
func KeyIndexHash(publicKeyPEM []byte) (string, error) {
	k, err := x509.NewPublicKey(bytes.NewReader(publicKeyPEM))
	if err != nil {
		return "", fmt.Errorf("parse public key: %w", err)
	}
	canon, err := k.CanonicalValue()
	if err != nil {
		return "", fmt.Errorf("canonicalize public key: %w", err)
	}
	sum := sha256.Sum256(canon)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// Info returns the active tree's head and signed checkpoint.
func (l *rekorLog) Info(ctx context.Context) (*tlog.Info, error) {
	resp, err := l.c.Tlog.GetLogInfo(rtlog.NewGetLogInfoParamsWithContext(ctx).WithTimeout(l.timeout))
	if err != nil {
		return nil, l.classify(ctx, "log info", err, nil)
	}
	p := resp.Payload
	if p == nil || p.TreeSize == nil || p.RootHash == nil || p.SignedTreeHead == nil || p.TreeID == nil {
		return nil, errors.New("rekorv1: log info: incomplete answer from server")
	}
	return &tlog.Info{TreeSize: *p.TreeSize, RootHash: *p.RootHash, SignedCheckpoint: *p.SignedTreeHead, TreeID: *p.TreeID}, nil
}

// ConsistencyProof returns the hashes proving the tree of size first is a
// prefix of the tree of size last. The range is checked against the current
// tree first: Rekor answers 500 for sizes beyond it, which would read as an
// outage.
func (l *rekorLog) ConsistencyProof(ctx context.Context, first, last int64) ([]string, error) {
	if first <= 0 || first > last {
		return nil, fmt.Errorf("rekorv1: consistency proof %d→%d: %w", first, last, tlog.ErrInvalidRange)
	}
	info, err := l.Info(ctx)
	if err != nil {
		return nil, err
	}
	if last > info.TreeSize {
		return nil, fmt.Errorf("rekorv1: consistency proof %d→%d: %w: tree size is %d", first, last, tlog.ErrInvalidRange, info.TreeSize)
	}
	if first == last {
		return []string{}, nil
	}
	params := rtlog.NewGetLogProofParamsWithContext(ctx).WithTimeout(l.timeout).
		WithFirstSize(&first).WithLastSize(last).WithTreeID(&info.TreeID)
	resp, err := l.c.Tlog.GetLogProof(params)
	if err != nil {
		return nil, l.classify(ctx, fmt.Sprintf("consistency proof %d→%d", first, last), err, tlog.ErrInvalidRange)
	}
	if resp.Payload == nil {
		return nil, errors.New("rekorv1: consistency proof: empty answer from server")
	}
	hashes := resp.Payload.Hashes
	if hashes == nil {
		hashes = []string{}
	}
	return hashes, nil
}

// PublicKey returns the PEM of the key that signs checkpoints and SETs.
func (l *rekorLog) PublicKey(ctx context.Context) ([]byte, error) {
	resp, err := l.c.Pubkey.GetPublicKey(pubkey.NewGetPublicKeyParamsWithContext(ctx).WithTimeout(l.timeout))
	if err != nil {
		return nil, l.classify(ctx, "public key", err, nil)
	}
	if _, err := x509.NewPublicKey(strings.NewReader(resp.Payload)); err != nil {
		return nil, fmt.Errorf("rekorv1: public key: server sent an unusable key: %w", err)
	}
	return []byte(resp.Payload), nil
}

// oneEntry unpacks Rekor's {uuid: entry} answer and checks that the body is
// the leaf the UUID names, so a confused or lying server cannot hand back
// another entry.
func oneEntry(op string, le models.LogEntry, wantUUID string) (*tlog.Entry, error) {
	if len(le) != 1 {
		return nil, fmt.Errorf("rekorv1: %s: server returned %d entries, want 1", op, len(le))
	}
	for uuid, anon := range le {
		uuid = strings.ToLower(uuid)
		if !isUUID(uuid) {
			return nil, fmt.Errorf("rekorv1: %s: server returned malformed uuid %q", op, uuid)
		}
		leaf := uuid[len(uuid)-64:]
		if wantUUID != "" && !strings.HasSuffix(wantUUID, leaf) {
			return nil, fmt.Errorf("rekorv1: %s: server returned entry %s", op, uuid)
		}
		body, ok := anon.Body.(string)
		if !ok {
			return nil, fmt.Errorf("rekorv1: %s: entry %s has no body", op, uuid)
		}
		raw, err := base64.StdEncoding.DecodeString(body)
		if err != nil {
			return nil, fmt.Errorf("rekorv1: %s: entry %s body: %w", op, uuid, err)
		}
		if got := hex.EncodeToString(rfc6962.DefaultHasher.HashLeaf(raw)); got != leaf {
			return nil, fmt.Errorf("rekorv1: %s: entry %s body hashes to leaf %s", op, uuid, got)
		}
		return &tlog.Entry{UUID: uuid, LogEntryAnon: anon}, nil
	}
	return nil, fmt.Errorf("rekorv1: %s: no entry in answer", op)
}

// classify wraps err from the generated client with a tlog sentinel:
// cancellation stays cancellation; 404 is ErrNotFound; 400/422 is onBad
// (when set); 401 and 403 are tlog.ErrUnauthorized; 429 and 5xx are ErrUnavailable; an error without an HTTP
// answer (refused, reset, timed out, or retryablehttp giving up on a 5xx) is
// ErrUnavailable too.
func (l *rekorLog) classify(ctx context.Context, op string, err error, onBad error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("rekorv1: %s at %s: %w", op, l.url, ctxErr)
	}
	code := 0
	var coded interface{ Code() int }
	var apiErr *runtime.APIError
	switch {
	case errors.As(err, &coded):
		code = coded.Code()
	case errors.As(err, &apiErr):
		code = apiErr.Code
	}
	msg := err.Error()
	if p, ok := err.(interface{ GetPayload() *models.Error }); ok && p.GetPayload() != nil {
		msg = fmt.Sprintf("%d %s", code, p.GetPayload().Message)
	}
	switch {
	case code == 0:
		return fmt.Errorf("rekorv1: %s at %s: %w: %v", op, l.url, tlog.ErrUnavailable, err)
	case code == http.StatusNotFound:
		return fmt.Errorf("rekorv1: %s: %w: %s", op, tlog.ErrNotFound, msg)
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return fmt.Errorf("rekorv1: %s at %s: %w: %s", op, l.url, tlog.ErrUnauthorized, msg)
	case (code == http.StatusBadRequest || code == http.StatusUnprocessableEntity) && onBad != nil:
		return fmt.Errorf("rekorv1: %s: %w: %s", op, onBad, msg)
	case code == http.StatusTooManyRequests || code >= 500:
		return fmt.Errorf("rekorv1: %s at %s: %w: %s", op, l.url, tlog.ErrUnavailable, msg)
	default:
		return fmt.Errorf("rekorv1: %s: %s", op, msg)
	}
}

func isUUID(s string) bool {
	if len(s) != 64 && len(s) != 80 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

func normalize(uuids []string) []string {
	out := make([]string, 0, len(uuids))
	seen := make(map[string]bool, len(uuids))
	for _, u := range uuids {
		u = strings.ToLower(u)
		if !seen[u] {
			seen[u] = true
			out = append(out, u)
		}
	}
	return out
}

// intersect keeps the UUIDs of a that name a leaf in b; Rekor's index may
// hold an entry under its 64- or its 80-hex form.
func intersect(a, b []string) []string {
	leaf := func(u string) string { return u[len(u)-64:] }
	in := map[string]bool{}
	for _, u := range b {
		if len(u) >= 64 {
			in[leaf(u)] = true
		}
	}
	out := []string{}
	for _, u := range a {
		if len(u) >= 64 && in[leaf(u)] {
			out = append(out, u)
		}
	}
	return out
}

func init() {
	tlog.Register(tlog.KindRekor, func(_ context.Context, cfg tlog.Config) (tlog.Log, error) {
		if cfg.URL == "" {
			return nil, fmt.Errorf("%w: no Rekor URL (--rekor-url)", ErrBadURL)
		}
		var opts []Option
		if cfg.Insecure {
			opts = append(opts, WithInsecure())
		}
		if cfg.Token != "" {
			opts = append(opts, WithToken(cfg.Token))
		}
		return New(cfg.URL, opts...)
	})
}
