package provenance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/accordmesh/accord/provenance/tlog"
)

// SearchQuery is what an auditor asks. Set fields are ANDed; at least one
// of JobID, SpecDigest, Artifact, SignerPEM is required (the log indexes
// those; the time range only filters).
type SearchQuery struct {
	JobID      string
	SpecDigest string // sha256:<hex> of a spec document
	Artifact   string // sha256:<hex> of an output or other subject
	SignerPEM  []byte // public key that signed the statements
	Since      time.Time
	Until      time.Time
}

// SearchHit is one matching log entry.
type SearchHit struct {
	UUID           string    `json:"uuid"`
	LogIndex       int64     `json:"log_index"`
	IntegratedTime time.Time `json:"integrated_time"`
	JobID          string    `json:"job_id,omitempty"`
	Stage          string    `json:"stage,omitempty"`
	PredicateType  string    `json:"predicate_type,omitempty"`
	Subjects       []Subject `json:"subjects,omitempty"`
}

// ErrEmptyQuery: a search with no indexed criterion.
var ErrEmptyQuery = errors.New("provenance: search needs a job ID, spec digest, artifact digest or signer key")

// Search finds log entries matching q, sorted by log index.
func Search(ctx context.Context, l tlog.Log, q SearchQuery) ([]SearchHit, error) {
	var qs []tlog.Query
	for _, d := range []struct{ what, v string }{{"spec digest", q.SpecDigest}, {"artifact digest", q.Artifact}} {
		if d.v != "" && !ValidDigest(d.v) {
			return nil, fmt.Errorf("provenance: %s %q is not sha256:<64 hex>", d.what, d.v)
		}
	}
	if q.JobID != "" {
		qs = append(qs, tlog.Query{Hash: JobDigest(q.JobID)})
	}
	if q.SpecDigest != "" {
		qs = append(qs, tlog.Query{Hash: q.SpecDigest})
	}
	if q.Artifact != "" {
		qs = append(qs, tlog.Query{Hash: q.Artifact})
	}
	if len(q.SignerPEM) > 0 {
		if len(qs) == 0 {
			qs = append(qs, tlog.Query{})
		}
		for i := range qs {
			qs[i].PublicKeyPEM = q.SignerPEM
		}
	}
	if len(qs) == 0 {
		return nil, ErrEmptyQuery
	}
	var uuids map[string]string // leaf → uuid
	for _, tq := range qs {
		got, err := l.Search(ctx, tq)
		if err != nil {
			return nil, fmt.Errorf("provenance: search: %w", err)
		}
		next := map[string]string{}
		for _, u := range got {
			k := leafOf(u)
			if uuids == nil || uuids[k] != "" {
				next[k] = u
			}
		}
		uuids = next
	}
	hits := []SearchHit{}
	for _, u := range uuids {
		e, err := l.Get(ctx, u)
		if err != nil {
			return nil, fmt.Errorf("provenance: search: get %s: %w", u, err)
		}
		h := SearchHit{UUID: e.UUID}
		if e.LogIndex != nil {
			h.LogIndex = *e.LogIndex
		}
		if e.IntegratedTime != nil {
			h.IntegratedTime = time.Unix(*e.IntegratedTime, 0).UTC()
		}
		if !q.Since.IsZero() && h.IntegratedTime.Before(q.Since) || !q.Until.IsZero() && h.IntegratedTime.After(q.Until) {
			continue
		}
		if e.Attestation != nil && len(e.Attestation.Data) > 0 {
			if st, err := ParseStatement(e.Attestation.Data); err == nil {
				h.PredicateType, h.Subjects = st.PredicateType, st.Subjects()
				var hd Header
				if json.Unmarshal(st.Predicate, &hd) == nil {
					h.JobID, h.Stage = hd.JobID, hd.Stage
				}
			}
		}
		hits = append(hits, h)
	}
	sort.Slice(hits, func(i, j int) bool { return hits[i].LogIndex < hits[j].LogIndex })
	return hits, nil
}

func leafOf(uuid string) string {
	if len(uuid) == 80 {
		return uuid[16:]
	}
	return uuid
}
