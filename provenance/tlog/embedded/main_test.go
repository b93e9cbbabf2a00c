package embedded_test

import (
	"flag"
	"io"
	"os"
	"testing"

	"k8s.io/klog/v2"
)

// TestMain silences tessera's klog info lines, which interleave with
// benchmark output; warnings and errors still reach stderr.
func TestMain(m *testing.M) {
	QuietKlog()
	os.Exit(m.Run())
}

// QuietKlog sends klog output below ERROR nowhere.
func QuietKlog() {
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	_ = fs.Set("logtostderr", "false")
	_ = fs.Set("alsologtostderr", "false")
	_ = fs.Set("stderrthreshold", "ERROR")
	klog.SetOutput(io.Discard)
}
