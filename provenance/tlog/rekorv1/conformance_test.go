package rekorv1_test

import (
	"context"
	"os"
	"testing"

	"github.com/accordmesh/accord/provenance/tlog"
	"github.com/accordmesh/accord/provenance/tlog/rekorv1"
	"github.com/accordmesh/accord/provenance/tlog/tlogtest"
)

// TestConformance runs the shared backend suite against the real
// rekor-server that scripts/services/rekor.sh starts.
func TestConformance(t *testing.T) {
	url := os.Getenv("ACCORD_TEST_REKOR_URL")
	if url == "" {
		t.Skip("ACCORD_TEST_REKOR_URL not set: start the Rekor stack with scripts/services/rekor.sh start ENVFILE (make test does)")
	}
	l, err := tlog.Open(context.Background(), tlog.Config{Kind: tlog.KindRekor, URL: url, Insecure: true}) // loopback, plain HTTP
	if err != nil {
		t.Fatal(err)
	}
	tlogtest.Run(t, func(*testing.T) tlog.Log { return l })
}

func TestOpenNeedsURL(t *testing.T) {
	if _, err := tlog.Open(context.Background(), tlog.Config{Kind: tlog.KindRekor}); err == nil {
		t.Fatal("Open without URL succeeded")
	}
	if _, err := rekorv1.New("http://127.0.0.1:9", rekorv1.WithInsecure()); err != nil {
		t.Fatal(err)
	}
}
