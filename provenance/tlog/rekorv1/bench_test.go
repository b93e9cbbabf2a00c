package rekorv1_test

import (
	"context"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/provenance/tlog"
	"github.com/accordmesh/accord/provenance/tlog/embedded"
	"github.com/accordmesh/accord/provenance/tlog/rekorv1"
	"github.com/accordmesh/accord/provenance/tlog/tlogtest"
)

// BenchmarkAppend measures attestations appended per second (upload until
// the entry comes back with its inclusion proof and SET) on the embedded log
// and on the real Rekor v1 stack, in the same run: one uploader at a time
// (serial, as one job's stages are) and 16 concurrent uploaders (many jobs).
// `make bench-rekor` runs it.
func BenchmarkAppend(b *testing.B) {
	b.Run("embedded", func(b *testing.B) {
		l, err := embedded.Open(context.Background(), b.TempDir(), embedded.Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close(context.Background())
		benchLog(b, l)
	})
	b.Run("rekor", func(b *testing.B) {
		url := os.Getenv("ACCORD_TEST_REKOR_URL")
		if url == "" {
			b.Skip("ACCORD_TEST_REKOR_URL not set: make bench-rekor starts the stack")
		}
		l, err := rekorv1.New(url, rekorv1.WithInsecure()) // the test stack is on loopback
		if err != nil {
			b.Fatal(err)
		}
		benchLog(b, l)
	})
}

func benchLog(b *testing.B, l tlog.Log) {
	b.Run("serial", func(b *testing.B) { benchUploads(b, l, 1) })
	b.Run("parallel16", func(b *testing.B) { benchUploads(b, l, 16) })
}

func benchUploads(b *testing.B, l tlog.Log, workers int) {
	key, err := provenance.GenerateKey("")
	if err != nil {
		b.Fatal(err)
	}
	envs := make([][]byte, b.N)
	for i := range envs {
		envs[i] = tlogtest.NewFixture(b, key).Envelope
	}
	pub := key.PublicPEM()
	ctx := context.Background()
	var next atomic.Int64
	errs := make(chan error, workers)
	b.ResetTimer()
	start := time.Now()
	for range workers {
		go func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(len(envs)) {
					errs <- nil
					return
				}
				if _, err := l.Upload(ctx, envs[i], pub); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "attestations/s")
}
