package witness

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/accordmesh/accord/provenance/tlog"
)

// Cosigned is a checkpoint of a log with the cosignatures witnesses gave
// it: Note is the signed note (the log's signature, then one line per
// cosignature), ready to serve or to check with VerifyCosignatures.
type Cosigned struct {
	Note []byte
	// Size is the checkpoint's tree size.
	Size int64
	// Witnesses are the URLs of the witnesses that cosigned it.
	Witnesses []string
	// Time is when the last witness answered.
	Time time.Time
}

// Keeper keeps a set of witnesses up to date with one log, as a log's
// operator runs it (`accord log serve --witness URL`): every round it takes
// the log's current checkpoint to each witness with Update and keeps the
// newest checkpoint at least one of them cosigned. The cosignatures are not
// verified here (the Keeper need not trust any witness key): whoever reads
// Latest counts them with VerifyCosignatures.
type Keeper struct {
	l    tlog.Log
	urls []string
	log  *slog.Logger

	mu     sync.Mutex
	sizes  map[string]uint64 // witness URL → size it cosigned last
	latest *Cosigned
}

// NewKeeper returns a Keeper for l and the witnesses at urls (their
// tlog-witness submission prefixes).
func NewKeeper(l tlog.Log, urls []string, logger *slog.Logger) (*Keeper, error) {
	if len(urls) == 0 {
		return nil, fmt.Errorf("%w: no witness URLs", ErrMalformed)
	}
	for _, u := range urls {
		if _, err := addURL(u); err != nil {
			return nil, err
		}
	}
	if logger == nil {
		logger = slog.Default()
	}
	return &Keeper{l: l, urls: append([]string(nil), urls...), log: logger, sizes: map[string]uint64{}}, nil
}

// Latest is the newest checkpoint cosigned so far (false before the first).
func (k *Keeper) Latest() (Cosigned, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.latest == nil {
		return Cosigned{}, false
	}
	c := *k.latest
	c.Note = append([]byte(nil), c.Note...)
	c.Witnesses = append([]string(nil), c.Witnesses...)
	return c, true
}

// LatestNote is Latest's note, in the shape rekorapi.WithCosigned takes.
func (k *Keeper) LatestNote() ([]byte, bool) {
	c, ok := k.Latest()
	return c.Note, ok
}

// Refresh runs one round: the log's current checkpoint goes to every
// witness (concurrently); the ones that cosign it make the new Latest. A
// round in which no witness cosigns keeps the previous Latest and returns
// the witnesses' errors joined; one in which some fail returns them too,
// with the new Latest in place. A round at the size and with the witnesses
// of Latest asks nobody.
func (k *Keeper) Refresh(ctx context.Context) (Cosigned, error) {
	info, err := k.l.Info(ctx)
	if err != nil {
		return Cosigned{}, fmt.Errorf("witness: keeper: log info: %w", err)
	}
	if c, ok := k.Latest(); ok && c.Size == info.TreeSize && len(c.Witnesses) == len(k.urls) {
		return c, nil
	}
	sigs := make([][]Signature, len(k.urls))
	errs := make([]error, len(k.urls))
	var wg sync.WaitGroup
	for i, u := range k.urls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sigs[i], errs[i] = k.update(ctx, u, info)
		}()
	}
	wg.Wait()
	next := Cosigned{Note: []byte(info.SignedCheckpoint), Size: info.TreeSize, Time: time.Now().UTC()}
	for i, u := range k.urls {
		if errs[i] != nil {
			errs[i] = fmt.Errorf("witness %s: %w", u, errs[i])
			continue
		}
		next.Note = AppendSignatures(next.Note, sigs[i])
		next.Witnesses = append(next.Witnesses, u)
	}
	err = errors.Join(errs...)
	if len(next.Witnesses) == 0 {
		return Cosigned{}, fmt.Errorf("witness: keeper: no witness cosigned size %d: %w", info.TreeSize, err)
	}
	k.mu.Lock()
	if k.latest == nil || next.Size > k.latest.Size ||
		(next.Size == k.latest.Size && len(next.Witnesses) >= len(k.latest.Witnesses)) {
		k.latest = &next
	}
	k.mu.Unlock()
	return next, err
}

// update brings one witness to info and remembers the size it cosigned.
func (k *Keeper) update(ctx context.Context, url string, info *tlog.Info) ([]Signature, error) {
	k.mu.Lock()
	old := k.sizes[url]
	k.mu.Unlock()
	sigs, got, err := Update(ctx, url, k.l, info, old)
	if err != nil {
		return nil, err
	}
	if len(sigs) == 0 {
		return nil, fmt.Errorf("%w: answered 200 without a cosignature", ErrMalformed)
	}
	k.mu.Lock()
	k.sizes[url] = uint64(got.TreeSize)
	k.mu.Unlock()
	return sigs, nil
}

// Run refreshes every interval until ctx ends, logging failed rounds; the
// first round starts at once.
func (k *Keeper) Run(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = 10 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, every+clientTimeout)
		c, err := k.Refresh(rctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			k.log.Warn("witness: keeper round", "size", c.Size, "cosigned_by", len(c.Witnesses), "err", err)
		default:
			k.log.Debug("witness: keeper round", "size", c.Size, "cosigned_by", len(c.Witnesses))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
