// Package rekorapi serves the subset of the Rekor v1 REST API that
// rekor-cli's loginfo, get, search, verify and upload commands use, over any
// tlog.Log. `accord dev` serves the embedded log with it (read-only), so
// auditors can point stock Rekor tooling at Accord, and `accord log serve`
// serves it to every party with authenticated writers (WithWriters).
//
// Routes (all under /api/v1, JSON unless noted):
//
//	GET  /log                      tree head and signed checkpoint (LogInfo)
//	GET  /log/publicKey            the log's key (application/x-pem-file)
//	GET  /log/proof                consistency proof (firstSize, lastSize)
//	GET  /log/entries?logIndex=N   entry by index
//	GET  /log/entries/{entryUUID}  entry by UUID (64 or 80 hex)
//	POST /log/entries              upload an intoto v0.0.2 or dsse v0.0.1 entry
//	GET  /log/checkpoint/cosigned  the latest checkpoint witnesses cosigned
//	                               (text/plain signed note; WithCosigned)
//	POST /log/entries/retrieve     entries by entryUUIDs / logIndexes
//	POST /index/retrieve           search by hash and/or x509 public key
//
// Differences from rekor-server: uploads answer 201 even when the entry
// already existed (tlog.Log.Upload is idempotent and does not say which);
// both upload kinds are logged as the backend's entry kind (intoto v0.0.2
// for the embedded log), the envelope being reassembled from the proposed
// entry; searchLogQuery by proposed entries, and index searches by email,
// subject or non-x509 keys answer 400; a consistency proof carries rootHash
// only when lastSize is the current tree size.
//
// Writers: with WithWriters, uploads need "Authorization: Bearer <token>"
// of a writer in the writers file (AddWriter makes one; only the token's
// SHA-256 is stored) and, when that writer has an allow-list, a signer key
// on it. No token answers 401 (with WWW-Authenticate: Bearer), an unknown
// token or a key off the list 403. Reads stay open: a transparency log is
// for everyone to read. Without WithWriters anyone may upload (a log on
// this machine, tests).
package rekorapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-openapi/runtime"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	"github.com/sigstore/rekor/pkg/generated/models"

	"github.com/accordmesh/accord/provenance/tlog"
)

// DefaultMaxBody bounds request bodies (uploads carry whole envelopes).
const DefaultMaxBody = 4 << 20

// maxRetrieve bounds the UUIDs plus indexes of one retrieve request, like
// rekor-server's limit of 10.
const maxRetrieve = 10

// Option configures NewHandler.
type Option func(*handler)

// WithLogger logs failed requests (5xx) to l.
func WithLogger(l *slog.Logger) Option { return func(h *handler) { h.log = l } }

// WithMaxBody bounds request bodies to n bytes (DefaultMaxBody when unset).
func WithMaxBody(n int64) Option { return func(h *handler) { h.maxBody = n } }

// WithReadOnly refuses uploads (405), for serving a log others write.
func WithReadOnly() Option { return func(h *handler) { h.readOnly = true } }

// WithWriters accepts uploads only from the writers in w (see the package
// doc for the answers).
func WithWriters(w *Writers) Option { return func(h *handler) { h.writers = w } }

// WithCosigned serves GET /api/v1/log/checkpoint/cosigned from latest: the
// log's checkpoint with the witnesses' cosignature lines (C2SP
// tlog-cosignature), false while there is none (503).
func WithCosigned(latest func() ([]byte, bool)) Option {
	return func(h *handler) { h.cosigned = latest }
}

type handler struct {
	l        tlog.Log
	log      *slog.Logger
	maxBody  int64
	readOnly bool
	writers  *Writers
	cosigned func() ([]byte, bool)
	mux      *http.ServeMux
}

// NewHandler returns an http.Handler serving l as a Rekor v1 server. Mount
// it at the root of a server: routes start with /api/v1/.
func NewHandler(l tlog.Log, opts ...Option) http.Handler {
	h := &handler{l: l, log: slog.Default(), maxBody: DefaultMaxBody}
	for _, o := range opts {
		o(h)
	}
	if h.maxBody <= 0 {
		h.maxBody = DefaultMaxBody
	}
	m := http.NewServeMux()
	m.HandleFunc("GET /api/v1/log", h.logInfo)
	m.HandleFunc("GET /api/v1/log/publicKey", h.publicKey)
	m.HandleFunc("GET /api/v1/log/proof", h.proof)
	m.HandleFunc("GET /api/v1/log/entries", h.entryByIndex)
	m.HandleFunc("GET /api/v1/log/entries/{uuid}", h.entryByUUID)
	m.HandleFunc("POST /api/v1/log/entries", h.create)
	m.HandleFunc("POST /api/v1/log/entries/retrieve", h.retrieve)
	m.HandleFunc("POST /api/v1/index/retrieve", h.searchIndex)
	if h.cosigned != nil {
		m.HandleFunc("GET /api/v1/log/checkpoint/cosigned", h.cosignedCheckpoint)
	}
	h.mux = m
	return h
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

func (h *handler) logInfo(w http.ResponseWriter, r *http.Request) {
	info, err := h.l.Info(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, models.LogInfo{
		RootHash:       &info.RootHash,
		TreeSize:       &info.TreeSize,
		SignedTreeHead: &info.SignedCheckpoint,
		TreeID:         &info.TreeID,
	})
}

func (h *handler) publicKey(w http.ResponseWriter, r *http.Request) {
	pem, err := h.l.PublicKey(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(pem)
}

func (h *handler) proof(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	last, err := strconv.ParseInt(q.Get("lastSize"), 10, 64)
	if err != nil {
		writeError(w, http.StatusBadRequest, "lastSize must be an integer")
		return
	}
	first := int64(1)
	if s := q.Get("firstSize"); s != "" {
		if first, err = strconv.ParseInt(s, 10, 64); err != nil {
			writeError(w, http.StatusBadRequest, "firstSize must be an integer")
			return
		}
	}
	hashes, err := h.l.ConsistencyProof(r.Context(), first, last)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	p := models.ConsistencyProof{Hashes: hashes}
	if info, err := h.l.Info(r.Context()); err == nil && info.TreeSize == last {
		p.RootHash = &info.RootHash
	}
	writeJSON(w, http.StatusOK, p)
}

func (h *handler) entryByIndex(w http.ResponseWriter, r *http.Request) {
	s := r.URL.Query().Get("logIndex")
	i, err := strconv.ParseInt(s, 10, 64)
	if err != nil || i < 0 {
		writeError(w, http.StatusBadRequest, "logIndex must be a non-negative integer")
		return
	}
	e, err := h.l.GetByIndex(r.Context(), i)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, models.LogEntry{e.UUID: e.LogEntryAnon})
}

func (h *handler) entryByUUID(w http.ResponseWriter, r *http.Request) {
	uuid := r.PathValue("uuid")
	if !isUUID(uuid) {
		writeError(w, http.StatusBadRequest, "entryUUID must be 64 or 80 hex digits")
		return
	}
	e, err := h.l.Get(r.Context(), strings.ToLower(uuid))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, models.LogEntry{e.UUID: e.LogEntryAnon})
}

// create logs a proposed entry. Idempotent through tlog.Log.Upload.
func (h *handler) create(w http.ResponseWriter, r *http.Request) {
	if h.readOnly {
		writeError(w, http.StatusMethodNotAllowed, "this log accepts no uploads")
		return
	}
	token := bearer(r.Header.Get("Authorization"))
	if h.writers != nil {
		// The token is checked before the body is read: strangers cost
		// a header parse, not a 4 MiB read.
		if _, err := h.writers.Authorize(token, nil); err != nil {
			h.refuse(w, r, err)
			return
		}
	}
	body, ok := h.readBody(w, r)
	if !ok {
		return
	}
	pe, err := models.UnmarshalProposedEntry(bytes.NewReader(body), runtime.JSONConsumer())
	if err != nil {
		writeError(w, http.StatusBadRequest, "malformed proposed entry: "+err.Error())
		return
	}
	env, key, err := envelopeOf(pe)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	writer := ""
	if h.writers != nil {
		if writer, err = h.writers.Authorize(token, key); err != nil {
			h.refuse(w, r, err)
			return
		}
	}
	e, err := h.l.Upload(r.Context(), env, key)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if writer != "" {
		h.log.InfoContext(r.Context(), "rekorapi: logged", "writer", writer, "uuid", e.UUID, "index", derefIndex(e))
	}
	w.Header().Set("Location", "/api/v1/log/entries/"+e.UUID)
	w.Header().Set("ETag", e.UUID)
	writeJSON(w, http.StatusCreated, models.LogEntry{e.UUID: e.LogEntryAnon})
}

// refuse answers an authorization failure: 401 without a token, 403 for
// an unknown token or a signer key off the writer's list, 500 when the
// writers file cannot be read.
func (h *handler) refuse(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, ErrNoToken):
		w.Header().Set("WWW-Authenticate", `Bearer realm="accord-log"`)
		writeError(w, http.StatusUnauthorized, "uploads need a writer token: Authorization: Bearer <token> (accord log token add)")
	case errors.Is(err, ErrBadToken), errors.Is(err, ErrKeyNotAllowed):
		h.log.WarnContext(r.Context(), "rekorapi: upload refused", "remote", r.RemoteAddr, "err", err)
		writeError(w, http.StatusForbidden, err.Error())
	default:
		h.fail(w, r, err)
	}
}

func derefIndex(e *tlog.Entry) int64 {
	if e.LogIndex == nil {
		return -1
	}
	return *e.LogIndex
}

// cosignedCheckpoint serves the latest witnessed checkpoint as a signed
// note; clients verify it themselves (witness.VerifyCosignatures).
func (h *handler) cosignedCheckpoint(w http.ResponseWriter, _ *http.Request) {
	note, ok := h.cosigned()
	if !ok {
		writeError(w, http.StatusServiceUnavailable, "no checkpoint has been cosigned by a witness yet")
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(note)
}

// Server returns an http.Server for h on addr with bounded headers and
// read, write and idle timeouts (an upload waits for the log's next
// checkpoint, so writes get more time than reads need).
func Server(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
}

// envelopeOf reassembles the DSSE envelope and signer key of a proposed
// intoto v0.0.2 or dsse v0.0.1 entry.
func envelopeOf(pe models.ProposedEntry) (envelope, key []byte, err error) {
	switch p := pe.(type) {
	case *models.Intoto:
		if p.APIVersion == nil || *p.APIVersion != "0.0.2" {
			return nil, nil, errors.New("only intoto version 0.0.2 is supported")
		}
		var spec models.IntotoV002Schema
		if err := remarshal(p.Spec, &spec); err != nil {
			return nil, nil, fmt.Errorf("malformed intoto spec: %w", err)
		}
		if spec.Content == nil || spec.Content.Envelope == nil || spec.Content.Envelope.PayloadType == nil {
			return nil, nil, errors.New("intoto entry without an envelope")
		}
		ev := spec.Content.Envelope
		if len(ev.Signatures) != 1 || ev.Signatures[0] == nil || ev.Signatures[0].Sig == nil || ev.Signatures[0].PublicKey == nil {
			return nil, nil, errors.New("intoto entry must carry exactly one signature with its public key")
		}
		s := ev.Signatures[0]
		// Rekor's intoto type stores the envelope's base64 payload and
		// signature strings as bytes, so the decoded values are those
		// strings themselves.
		env := dsse.Envelope{
			PayloadType: *ev.PayloadType,
			Payload:     string(ev.Payload),
			Signatures:  []dsse.Signature{{KeyID: s.Keyid, Sig: string(*s.Sig)}},
		}
		b, err := json.Marshal(env)
		if err != nil {
			return nil, nil, err
		}
		return b, []byte(*s.PublicKey), nil
	case *models.DSSE:
		if p.APIVersion == nil || *p.APIVersion != "0.0.1" {
			return nil, nil, errors.New("only dsse version 0.0.1 is supported")
		}
		var spec models.DSSEV001Schema
		if err := remarshal(p.Spec, &spec); err != nil {
			return nil, nil, fmt.Errorf("malformed dsse spec: %w", err)
		}
		pc := spec.ProposedContent
		if pc == nil || pc.Envelope == nil || len(pc.Verifiers) != 1 {
			return nil, nil, errors.New("dsse entry must carry an envelope and exactly one verifier")
		}
		return []byte(*pc.Envelope), []byte(pc.Verifiers[0]), nil
	default:
		return nil, nil, fmt.Errorf("entry kind %q is not supported (want intoto 0.0.2 or dsse 0.0.1)", pe.Kind())
	}
}

func (h *handler) retrieve(w http.ResponseWriter, r *http.Request) {
	body, ok := h.readBody(w, r)
	if !ok {
		return
	}
	var q models.SearchLogQuery
	if err := json.Unmarshal(body, &q); err != nil {
		writeError(w, http.StatusBadRequest, "malformed search query: "+err.Error())
		return
	}
	if len(q.Entries()) > 0 {
		writeError(w, http.StatusBadRequest, "search by proposed entries is not supported: use entryUUIDs or logIndexes")
		return
	}
	if n := len(q.EntryUUIDs) + len(q.LogIndexes); n == 0 || n > maxRetrieve {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("give 1 to %d entryUUIDs and logIndexes", maxRetrieve))
		return
	}
	out := []models.LogEntry{}
	for _, u := range q.EntryUUIDs {
		if !isUUID(u) {
			writeError(w, http.StatusBadRequest, "entryUUIDs must be 64 or 80 hex digits")
			return
		}
	}
	for _, u := range q.EntryUUIDs {
		e, err := h.l.Get(r.Context(), strings.ToLower(u))
		if errors.Is(err, tlog.ErrNotFound) {
			continue // rekor-server leaves unknown entries out
		}
		if err != nil {
			h.fail(w, r, err)
			return
		}
		out = append(out, models.LogEntry{e.UUID: e.LogEntryAnon})
	}
	for _, i := range q.LogIndexes {
		if i == nil || *i < 0 {
			writeError(w, http.StatusBadRequest, "logIndexes must be non-negative")
			return
		}
		e, err := h.l.GetByIndex(r.Context(), *i)
		if errors.Is(err, tlog.ErrNotFound) {
			continue
		}
		if err != nil {
			h.fail(w, r, err)
			return
		}
		out = append(out, models.LogEntry{e.UUID: e.LogEntryAnon})
	}
	writeJSON(w, http.StatusOK, out)
}

// searchIndex answers POST /api/v1/index/retrieve. Like rekor-server, the
// operator defaults to "or".
func (h *handler) searchIndex(w http.ResponseWriter, r *http.Request) {
	body, ok := h.readBody(w, r)
	if !ok {
		return
	}
	var q models.SearchIndex
	if err := json.Unmarshal(body, &q); err != nil {
		writeError(w, http.StatusBadRequest, "malformed search: "+err.Error())
		return
	}
	if q.Email != "" || q.Subject != "" {
		writeError(w, http.StatusBadRequest, "search by email or subject is not supported")
		return
	}
	var queries []tlog.Query
	if q.Hash != "" {
		queries = append(queries, tlog.Query{Hash: prefixSHA(q.Hash)})
	}
	if q.PublicKey != nil {
		if q.PublicKey.Format == nil || *q.PublicKey.Format != models.SearchIndexPublicKeyFormatX509 {
			writeError(w, http.StatusBadRequest, "only x509 public keys are supported")
			return
		}
		if len(q.PublicKey.Content) == 0 {
			writeError(w, http.StatusBadRequest, "publicKey.content is empty (URLs are not fetched)")
			return
		}
		queries = append(queries, tlog.Query{PublicKeyPEM: q.PublicKey.Content})
	}
	if len(queries) == 0 {
		writeError(w, http.StatusBadRequest, "give a hash or a public key")
		return
	}
	switch q.Operator {
	case "", "or":
	case "and":
		if len(queries) == 2 {
			queries = []tlog.Query{{Hash: queries[0].Hash, PublicKeyPEM: queries[1].PublicKeyPEM}}
		}
	default:
		writeError(w, http.StatusBadRequest, "operator must be and or or")
		return
	}
	out := []string{}
	seen := map[string]bool{}
	for _, tq := range queries {
		uuids, err := h.l.Search(r.Context(), tq)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		for _, u := range uuids {
			if !seen[u] {
				seen[u] = true
				out = append(out, u)
			}
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *handler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over %d bytes", h.maxBody))
		} else {
			writeError(w, http.StatusBadRequest, "reading request: "+err.Error())
		}
		return nil, false
	}
	return b, true
}

// fail maps the backend's sentinels to Rekor's status codes.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, tlog.ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, tlog.ErrInvalidEntry), errors.Is(err, tlog.ErrInvalidRange):
		code = http.StatusBadRequest
	case errors.Is(err, tlog.ErrUnavailable):
		code = http.StatusServiceUnavailable
	}
	if code >= 500 {
		h.log.ErrorContext(r.Context(), "rekorapi: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeError(w, code, err.Error())
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "encoding answer: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, code int, msg string) {
	b, _ := json.Marshal(models.Error{Code: int64(code), Message: msg})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

func remarshal(in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

// prefixSHA lower-cases a digest and gives a bare 64-hex one its "sha256:"
// prefix, as rekor-server does.
func prefixSHA(s string) string {
	s = strings.ToLower(s)
	if !strings.Contains(s, ":") && len(s) == 64 {
		return "sha256:" + s
	}
	return s
}

func isUUID(s string) bool { return (len(s) == 64 || len(s) == 80) && isHex(s) }

func isHex(s string) bool {
	for _, c := range s {
		if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
			return false
		}
	}
	return s != ""
}
