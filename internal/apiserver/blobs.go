package apiserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/accordmesh/accord/artifacts"
	"github.com/accordmesh/accord/policies"
)

// Blobs is the artifact store as provider agents on other machines reach
// it; artifacts.Local implements it. An agent reads only what the jobs
// awarded to it were granted (the control plane records the grants when it
// places a job and seals its results) and pushes its collected outputs,
// which are granted to the job's tenant.
type Blobs interface {
	AgentReads(provider, digest string) (bool, error)
	AgentOwns(provider, tenant, digest string) (bool, error)
	Kind(ctx context.Context, digest string) (string, error)
	Open(digest string) (io.ReadCloser, int64, error)
	PutReader(ctx context.Context, r io.Reader, limit int64) (digest string, size int64, err error)
	Claim(ctx context.Context, tenant, digest string) (kind string, err error)
	JobAward(jobID string) (providers []string, tenant string, err error)
	GrantAgent(ctx context.Context, provider, tenant, digest string) error
}

// ProviderRoutes are the routes only provider agents' tokens may use: the
// artifact store over HTTP (artifacts.HTTP is their client). Every other
// token is answered 403. GET also answers HEAD.
var ProviderRoutes = []Route{
	{"GET", "/v1/blobs/{digest}", false},
	{"POST", "/v1/blobs", true},
	{"POST", "/v1/outputs", true},
}

// WithBlobs serves the provider routes from b, bounding a pushed blob to
// maxBytes (413 above). Without it they answer 501.
func WithBlobs(b Blobs, maxBytes int64) Option {
	return func(s *Server) { s.blobs, s.maxBlob = b, maxBytes }
}

func (s *Server) providerHandlers() map[string]func(http.ResponseWriter, *http.Request, policies.Principal) {
	return map[string]func(http.ResponseWriter, *http.Request, policies.Principal){
		"GET /v1/blobs/{digest}": s.getBlob,
		"POST /v1/blobs":         s.putBlob,
		"POST /v1/outputs":       s.putOutput,
	}
}

// authedAgent is authed for the provider routes: a provider's token, with
// its name, and nothing else.
func (s *Server) authedAgent(limit int64, h func(http.ResponseWriter, *http.Request, policies.Principal)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		p, ok := s.authenticate(w, r)
		if !ok {
			return
		}
		if p.Role != policies.RoleProvider || p.Name == "" {
			writeErr(w, http.StatusForbidden, "only provider agents' tokens reach the artifact store")
			return
		}
		if s.blobs == nil {
			writeErr(w, http.StatusNotImplemented, "this server serves no artifact store")
			return
		}
		h(w, r, p)
	})
}

// getBlob streams a blob the agent may read; with ?tenant=T, only one
// granted to it as T's input (HEAD ?tenant=T is the agent's ownership
// check). A blob the agent may not read is 404, as one that does not
// exist: its existence does not leak. The client verifies the digest.
func (s *Server) getBlob(w http.ResponseWriter, r *http.Request, p policies.Principal) {
	digest := r.PathValue("digest")
	var ok bool
	var err error
	if tenant := r.URL.Query().Get("tenant"); tenant != "" {
		ok, err = s.blobs.AgentOwns(p.Name, tenant, digest)
	} else {
		ok, err = s.blobs.AgentReads(p.Name, digest)
	}
	if err == nil && !ok {
		err = fmt.Errorf("%w: %s for provider %s", artifacts.ErrNotFound, digest, p.Name)
	}
	var kind string
	if err == nil {
		kind, err = s.blobs.Kind(r.Context(), digest)
	}
	if err != nil {
		s.failBlob(w, r, err)
		return
	}
	rc, size, err := s.blobs.Open(digest)
	if err != nil {
		s.failBlob(w, r, err)
		return
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	w.Header().Set(artifacts.KindHeader, kind)
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	pw := &pacedWriter{w: w, rc: http.NewResponseController(w), start: time.Now(), grace: s.dataGrace, rate: s.dataRate}
	if _, err := io.Copy(pw, io.LimitReader(rc, size)); err != nil {
		s.log.Info("api blob cut short", "digest", digest, "provider", p.Name, "err", err)
	}
}

// putBlob stores a blob readable by the pushing agent only.
func (s *Server) putBlob(w http.ResponseWriter, r *http.Request, p policies.Principal) {
	digest, size, ok := s.storeBody(w, r)
	if !ok {
		return
	}
	kind, err := s.blobs.Kind(r.Context(), digest)
	if err == nil {
		err = s.blobs.GrantAgent(r.Context(), p.Name, "", digest)
	}
	if err != nil {
		s.failBlob(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, artifacts.BlobResponse{Digest: digest, Size: size, Kind: kind})
}

// putOutput stores a collected output of ?job=, a job awarded to the
// agent, and grants it to the job's tenant (who may then use it as an
// input of later jobs) and to every agent awarded the job (a split job's
// other parts read it as their input). Another provider's job, or none,
// is 404.
func (s *Server) putOutput(w http.ResponseWriter, r *http.Request, p policies.Principal) {
	job := r.URL.Query().Get("job")
	providers, tenant, err := s.blobs.JobAward(job)
	if err == nil && !slices.Contains(providers, p.Name) {
		err = fmt.Errorf("%w: job %s is not %s's", artifacts.ErrNoAward, job, p.Name)
	}
	if err != nil {
		s.failBlob(w, r, err)
		return
	}
	digest, size, ok := s.storeBody(w, r)
	if !ok {
		return
	}
	kind, err := s.blobs.Claim(r.Context(), tenant, digest)
	for _, to := range providers {
		if err == nil {
			err = s.blobs.GrantAgent(r.Context(), to, tenant, digest)
		}
	}
	if err != nil {
		s.failBlob(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, artifacts.BlobResponse{Digest: digest, Size: size, Kind: kind, Tenant: tenant})
}

// storeBody stores the request body, paced as data uploads are.
func (s *Server) storeBody(w http.ResponseWriter, r *http.Request) (string, int64, bool) {
	rc := http.NewResponseController(w)
	body := &pacedBody{r: r.Body, rc: rc, start: time.Now(), grace: s.dataGrace, rate: s.dataRate}
	digest, size, err := s.blobs.PutReader(r.Context(), body, s.maxBlob)
	rc.SetWriteDeadline(time.Now().Add(s.dataGrace))
	if err != nil {
		if errors.Is(err, artifacts.ErrTooLarge) {
			err = &http.MaxBytesError{Limit: s.maxBlob}
		}
		s.failBody(w, r, err, body.err)
		return "", 0, false
	}
	return digest, size, true
}

// failBlob answers an artifact store error with a fixed message per class.
func (s *Server) failBlob(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, artifacts.ErrNotFound), errors.Is(err, artifacts.ErrNoAward):
		s.log.Info("api request failed", "method", r.Method, "path", r.URL.Path, "status", http.StatusNotFound, "err", err)
		writeErr(w, http.StatusNotFound, "no such blob or job for this provider")
	case errors.Is(err, artifacts.ErrDigest), errors.Is(err, artifacts.ErrRefused):
		s.fail(w, r, Public(ErrBadRequest, "want a digest sha256:<64 lowercase hex> and a valid job ID"))
	case errors.Is(err, artifacts.ErrNotOwned):
		writeErr(w, http.StatusForbidden, "tree lists a blob that is not the job's tenant's")
	case errors.Is(err, artifacts.ErrManifest):
		s.fail(w, r, Public(ErrInvalid, "body is not a valid tree manifest (%s)", artifacts.TreeMediaType))
	default:
		s.fail(w, r, err)
	}
}

// pacedWriter moves the connection's write deadline along as a blob goes
// out, as pacedBody does for uploads: a reader must take the bytes at the
// minimum rate after the grace period.
type pacedWriter struct {
	w     io.Writer
	rc    *http.ResponseController
	start time.Time
	grace time.Duration
	rate  int64
	n     int64
}

func (p *pacedWriter) Write(b []byte) (int, error) {
	ahead := time.Duration(float64(p.n+int64(len(b))) / float64(p.rate) * float64(time.Second))
	p.rc.SetWriteDeadline(p.start.Add(p.grace + ahead))
	n, err := p.w.Write(b)
	p.n += int64(n)
	return n, err
}
