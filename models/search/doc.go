// Package search ranks the models of a catalogue against a query such as
//
//	task:text-classification lang:es domain:legal f1>=0.90 license:open-weights
//
// A query has three kinds of term (docs/models.md, section "Search"):
//
//   - key:value with a key from models.TagKeys is a tag term. Tags are soft:
//     each matched tag adds TagWeight times its confidence (Accord's when
//     present, else the author's times AuthorDiscount), but a candidate must
//     match at least one tag term when the query has only tag terms.
//   - metric OP number (OP one of >=, >, <=, <, =) is a benchmark term and a
//     filter: a candidate must hold a result for the metric that meets the
//     bound. A verified result counts before any unverified one, however much
//     better the unverified one is; it scores VerifiedWeight against
//     UnverifiedWeight, plus up to MarginWeight for the margin over the bound.
//   - anything else is free text: words and "quoted phrases", every one of
//     which must occur in the name (NameWeight) or the description
//     (DescriptionWeight) as case-folded tokens.
//
// Provenance completeness adds ProvenanceWeight for each of six facts: a
// signature, a transparency-log entry, parents pinned by digest, a training
// receipt, listed datasets and a verified benchmark; a missing fact is a
// reason with no points. Every Result carries one reason per contribution,
// highest first, so a user sees why a model ranked where it did.
//
// Results are ordered by score, then by name, then by version, highest
// first; by default only the highest matching version of each name is
// returned (Query.AllVersions returns every version).
//
// The index keeps a pre-tokenised document and inverted lists (tokens, tags,
// metrics) per entry, so a query evaluates only the candidates of its most
// selective filter. The package does no I/O beyond Save and Load, which are
// bounded, and every input (query, manifest, saved index) is treated as
// hostile.
package search

import "errors"

// Sentinel errors.
var (
	// ErrQuery wraps every query parse error (a *QueryError).
	ErrQuery = errors.New("search: invalid query")
	// ErrEntry is an entry Add refuses: an invalid manifest or digest.
	ErrEntry = errors.New("search: invalid entry")
	// ErrFormat is a saved index Load cannot read: truncated, malformed or
	// of another format.
	ErrFormat = errors.New("search: malformed index")
	// ErrTooLarge is a saved index over Load's byte bound.
	ErrTooLarge = errors.New("search: index too large")
)
