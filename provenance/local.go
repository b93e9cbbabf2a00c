package provenance

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"

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
// in home/trust.json that this home's own worker key may sign stages and
// the embedded log's key may sign checkpoints, the single-operator default.
// Any other log's key must already be trusted for ScopeLog (TrustLog). An
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
	if err := loc.init(ctx, cfg.ReadOnly, cfg.URL); err != nil {
		tlog.Close(ctx, l)
		return nil, err
	}
	loc.Recorder = NewRecorder(l, loc.Key, loc.Store)
	return loc, nil
}

func (loc *Local) init(ctx context.Context, readOnly bool, logURL string) error {
	var err error
	if loc.Trust, err = LoadTrustStore(DefaultTrustPath(loc.Home)); err != nil {
		return err
	}
	// A reader of the embedded log changes nothing; any other log is
	// checked against the trust store by readers and writers alike.
	if !readOnly || loc.Log.Kind() != tlog.KindEmbedded {
		if err := TrustLog(ctx, loc.Log, loc.Trust, logURL); err != nil {
			return err
		}
	}
	if readOnly {
		loc.Key, _ = LoadKey(WorkerKeyPath(loc.Home)) // reading needs no key
		return nil
	}
	if loc.Key, err = LoadOrCreateKey(WorkerKeyPath(loc.Home), AlgECDSAP256); err != nil {
		return err
	}
	if _, err := loc.Trust.Add(loc.Key.PublicPEM(), "local worker", ScopeStage); err != nil {
		return err
	}
	return loc.Trust.Save(DefaultTrustPath(loc.Home))
}

// TrustLog makes sure trust has l's key for ScopeLog: trust is pinned, not
// learned. The embedded log's key is this home's own (created with the log
// under the home, never fetched), so it is added. Any other log's key must
// already be there (`accord keys trust FILE --scope log`); otherwise the
// error wraps ErrUntrusted and names the key the log presented and the
// commands that trust it. logURL names the log in that error.
func TrustLog(ctx context.Context, l tlog.Log, trust *TrustStore, logURL string) error {
	pem, err := l.PublicKey(ctx)
	if err != nil {
		return fmt.Errorf("provenance: log public key: %w", err)
	}
	if l.Kind() == tlog.KindEmbedded {
		_, err := trust.Add(pem, "embedded log", ScopeLog)
		return err
	}
	pub, err := ParsePublicKeyPEM(pem)
	if err != nil {
		return fmt.Errorf("provenance: the %s log's public key: %w", l.Kind(), err)
	}
	id, err := Fingerprint(pub)
	if err != nil {
		return err
	}
	if trust.Allowed(id, ScopeLog) {
		return nil
	}
	return fmt.Errorf("%w: the %s log at %s signs with key %s, which is not trusted for scope %q; "+
		"Accord never trusts a log's key on first use. If this is the log you mean, compare that ID with the one "+
		"its operator publishes, then save the key and trust it:\n"+
		"  curl -fsS %s/api/v1/log/publicKey -o rekor.pub\n"+
		"  accord keys trust rekor.pub --scope log --name rekor",
		ErrUntrusted, l.Kind(), redact(logURL), id, ScopeLog, strings.TrimSuffix(redact(logURL), "/"))
}

// redact hides a URL's password.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// Close closes the log.
func (loc *Local) Close(ctx context.Context) error { return tlog.Close(ctx, loc.Log) }
