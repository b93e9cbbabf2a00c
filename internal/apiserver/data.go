package apiserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"time"

	"github.com/accordmesh/accord/artifacts"
	"github.com/accordmesh/accord/internal/names"
	"github.com/accordmesh/accord/policies"
)

// Data is the artifact store that POST /v1/data uploads tenants' inputs to;
// artifacts.Local implements it.
type Data interface {
	// PutReader stores at most limit bytes of r (else artifacts.ErrTooLarge).
	PutReader(ctx context.Context, r io.Reader, limit int64) (digest string, size int64, err error)
	// Claim grants tenant the stored blob if the upload proves it may have
	// it (a tree only over blobs the tenant already holds).
	Claim(ctx context.Context, tenant, digest string) (kind string, err error)
}

// DataResponse is POST /v1/data's answer.
type DataResponse struct {
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
	Kind   string `json:"kind"` // "file" or "tree"
	Tenant string `json:"tenant"`
}

// Data uploads are large, so they are not bound by the server's
// ReadTimeout (DefaultLimits: 60 s for the whole request) but by a pace: the
// body must arrive at an average of at least the minimum rate after a
// grace period, or the connection is cut. A 1 GiB upload may take up to
// DefaultDataGrace + 1 GiB / DefaultDataRate (about 69 minutes); a client
// that stalls is cut after the grace period.
const (
	DefaultMaxData   = 1 << 30
	DefaultDataGrace = 60 * time.Second
	DefaultDataRate  = 256 << 10 // bytes a second
)

// WithData serves POST /v1/data into d, bounding a body to maxBytes (413
// above). Without it the route answers 501.
func WithData(d Data, maxBytes int64) Option {
	return func(s *Server) { s.data, s.maxData = d, maxBytes }
}

// WithDataPace sets the grace period and minimum average rate (bytes a
// second, at least 1) of data uploads (default DefaultDataGrace,
// DefaultDataRate).
func WithDataPace(grace time.Duration, minRate int64) Option {
	return func(s *Server) { s.dataGrace, s.dataRate = grace, max(minRate, 1) }
}

// pushData stores the raw body as a blob and grants it to the tenant: the
// token's, or for an organisation-wide token the ?tenant= named. A body
// that is a tree manifest (Content-Type artifacts.TreeMediaType, or any body
// whose bytes are one, since the store tells trees by their bytes) is
// granted only if every blob it lists is already the tenant's.
func (s *Server) pushData(w http.ResponseWriter, r *http.Request, p policies.Principal) {
	if s.data == nil {
		writeErr(w, http.StatusNotImplemented, "this server does not store data")
		return
	}
	tenant := r.URL.Query().Get("tenant")
	if tenant == "" && p.Tenant != "*" {
		tenant = p.Tenant
	}
	if err := names.Tenant(tenant); err != nil {
		writeErr(w, http.StatusBadRequest, "tenant: want the tenant's name (?tenant=NAME for an organisation-wide token)")
		return
	}
	if !p.CanWrite(tenant) {
		writeErr(w, http.StatusForbidden, fmt.Sprintf("token may not push data for tenant %q", tenant))
		return
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	rc := http.NewResponseController(w)
	body := &pacedBody{r: r.Body, rc: rc, start: time.Now(), grace: s.dataGrace, rate: s.dataRate}
	digest, size, err := s.data.PutReader(r.Context(), body, s.maxData)
	// The server's WriteTimeout ran from the request's start; the answer
	// gets its own time.
	rc.SetWriteDeadline(time.Now().Add(s.dataGrace))
	if err != nil {
		s.failBody(w, r, err, body.err)
		return
	}
	kind, err := s.data.Claim(r.Context(), tenant, digest)
	switch {
	case errors.Is(err, artifacts.ErrNotOwned):
		writeErr(w, http.StatusForbidden, fmt.Sprintf("tree lists a blob that is not tenant %q's: push every file first", tenant))
		return
	case errors.Is(err, artifacts.ErrManifest):
		err = Public(ErrInvalid, "body is not a valid tree manifest (%s): compact JSON with sorted entries {path, digest, size, mode} and dirs", artifacts.TreeMediaType)
	case err == nil && mt == artifacts.TreeMediaType && kind != artifacts.KindTree:
		err = Public(ErrInvalid, "Content-Type is %s but the body is not a tree manifest", artifacts.TreeMediaType)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, DataResponse{Digest: digest, Size: size, Kind: kind, Tenant: tenant})
}

// pacedBody moves the connection's read deadline along as the body
// arrives: after n bytes, more must come by start + grace + n/rate, so a
// client must average the rate once the grace period is over.
type pacedBody struct {
	r     io.Reader
	rc    *http.ResponseController
	start time.Time
	grace time.Duration
	rate  int64
	n     int64
	err   error // the body's first read error, other than EOF
}

func (b *pacedBody) Read(p []byte) (int, error) {
	ahead := time.Duration(float64(b.n) / float64(b.rate) * float64(time.Second))
	// An error means the connection cannot take deadlines (never for
	// net/http's own); the server's ReadTimeout then still applies.
	b.rc.SetReadDeadline(b.start.Add(b.grace + ahead))
	n, err := b.r.Read(p)
	b.n += int64(n)
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

// failBody answers a data upload that could not be stored: over the
// limit, too slow, cut short, or the store's own failure.
func (s *Server) failBody(w http.ResponseWriter, r *http.Request, err, bodyErr error) {
	var mbe *http.MaxBytesError
	var ne net.Error
	switch {
	case errors.Is(err, artifacts.ErrTooLarge) || errors.As(bodyErr, &mbe):
		s.fail(w, r, &http.MaxBytesError{Limit: s.maxData})
	case errors.As(bodyErr, &ne) && ne.Timeout():
		s.log.Info("api request failed", "method", r.Method, "path", r.URL.Path, "status", http.StatusRequestTimeout, "err", err)
		writeErr(w, http.StatusRequestTimeout, fmt.Sprintf("request body arrived slower than %d bytes a second", s.dataRate))
	case bodyErr != nil:
		s.fail(w, r, Public(ErrBadRequest, "request body could not be read"))
	default:
		s.fail(w, r, err)
	}
}
