package provenance

import "strings"

// JobSubjectPrefix names the statement subject that makes a job's
// attestations searchable in any Rekor log by the job ID alone: Rekor
// indexes every subject digest of an intoto entry, and the subject
// "accord:job/<id>" has digest sha256(<id>).
const JobSubjectPrefix = "accord:job/"

// JobDigest is the searchable digest of a job ID: "sha256:" + hex sha256(id).
func JobDigest(jobID string) string { return Digest([]byte(jobID)) }

// JobSubject is the subject carrying a job's searchable digest.
func JobSubject(jobID string) Subject {
	return Subject{Name: JobSubjectPrefix + jobID, Digest: JobDigest(jobID)}
}

// Subject is a statement subject with one "sha256:<hex>" digest.
type Subject struct {
	Name   string `json:"name"`
	Digest string `json:"digest"`
}

// AsMap renders the subject in in-toto JSON form.
func (s Subject) AsMap() map[string]any {
	alg, hexd, _ := strings.Cut(s.Digest, ":")
	return map[string]any{"name": s.Name, "digest": map[string]string{alg: hexd}}
}
