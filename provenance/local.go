package provenance

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/accordmesh/accord/provenance/tlog"
)

// WorkerKeyPath is where a local worker keeps its stage-signing key.
func WorkerKeyPath(home string) string { return filepath.Join(home, "keys", "worker.key") }

// Local is the provenance setup of one Accord home directory: the worker's
// stage key, the trust store, the attestation store, the log and a Recorder.
type Local struct {
	Home     string
	Key      *Key
	Trust    *TrustStore
	Store    *Store
	Log      tlog.Log
	Recorder *Recorder
}

// OpenLocal opens the log described by cfg (Kind defaults to embedded, Home
// to home; the backend must be registered by importing its package), loads
// or creates the worker key (ECDSA P-256) and, unless cfg.ReadOnly, records
// in home/trust.json that this home's own worker key may sign stages and the
// log's key may sign checkpoints, the single-operator default. An
// independent auditor keeps their own trust store instead. Idempotent.
// Close it.
func OpenLocal(ctx context.Context, home string, cfg tlog.Config) (*Local, error) {
	if cfg.Kind == "" {
		cfg.Kind = tlog.KindEmbedded
	}
	if cfg.Home == "" {
		cfg.Home = home
	}
	l, err := tlog.Open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	loc := &Local{Home: home, Log: l, Store: NewStore(DefaultStoreDir(home))}
	if err := loc.init(ctx, cfg.ReadOnly); err != nil {
		tlog.Close(ctx, l)
		return nil, err
	}
	loc.Recorder = NewRecorder(l, loc.Key, loc.Store)
	return loc, nil
}

func (loc *Local) init(ctx context.Context, readOnly bool) error {
	var err error
	if loc.Trust, err = LoadTrustStore(DefaultTrustPath(loc.Home)); err != nil {
		return err
	}
	if readOnly {
		loc.Key, _ = LoadKey(WorkerKeyPath(loc.Home)) // reading needs no key
		return nil
	}
	if loc.Key, err = LoadOrCreateKey(WorkerKeyPath(loc.Home), AlgECDSAP256); err != nil {
		return err
	}
	pub, err := loc.Log.PublicKey(ctx)
	if err != nil {
		return fmt.Errorf("provenance: log public key: %w", err)
	}
	if _, err := loc.Trust.Add(loc.Key.PublicPEM(), "local worker", ScopeStage); err != nil {
		return err
	}
	if _, err := loc.Trust.Add(pub, loc.Log.Kind()+" log", ScopeLog); err != nil {
		return err
	}
	return loc.Trust.Save(DefaultTrustPath(loc.Home))
}

// Close closes the log.
func (loc *Local) Close(ctx context.Context) error { return tlog.Close(ctx, loc.Log) }
