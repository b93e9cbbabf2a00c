// Package exchange is Accord's model exchange: a registry of models
// (package models/registry), the signatures their publishers make
// (package models) and the transparency log that records them, together.
//
// Publishing a version pushes its files as a ModelPack artifact, signs two
// statements with the publisher's key, logs both and attaches both to the
// artifact as referrers:
//
//   - the OpenSSF model-signing v1.0 statement over every file's digest
//     (TypeSignature), and
//   - Accord's publication statement over the Accord manifest (owner,
//     lineage, licence, prices, royalties) and the artifact's digest
//     (TypePublication).
//
// Verifying a version checks both signatures against the trust store (the
// publisher must be trusted to sign for the model's owner: scope
// spec:<owner>, or operator (legacy: stage) for the operator publishing a
// job's output), both log entries (inclusion proof, signed entry
// timestamp, the log's key trusted for scope log), that the signed files are the artifact's layers
// (and, for a pulled copy, the files on disk), and that the published terms
// are the Accord manifest the registry serves.
//
// Money terms are read only from verified publications: the price a job
// agrees to and the royalties up the lineage (models.SplitFee) come from
// manifests this package verified.
package exchange
