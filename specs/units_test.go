package specs

import (
	"strings"
	"testing"
	"time"
)

func TestParseCPU(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		err  string
	}{
		{"500m", 500, ""}, {"2", 2000, ""}, {"0.5", 500, ""}, {"1.25", 1250, ""}, {"0.001", 1, ""},
		{"-1", 0, "negative"}, {"1.0001", 0, "finer than a millicore"}, {"2 cores", 0, "not a CPU quantity"},
		{"m", 0, "not a CPU quantity"}, {"1.", 0, "not a CPU quantity"}, {"99999999999999999999", 0, "too large"},
		{"1000001", 0, "too large"}, {"1000000", 1_000_000_000, ""},
	} {
		got, err := parseCPU(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("parseCPU(%q) = %d, %v; want error containing %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseCPU(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

func TestParseBytes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		err  string
	}{
		{"16GiB", 16 << 30, ""}, {"512Mi", 512 << 20, ""}, {"1G", 1e9, ""}, {"1GB", 1e9, ""}, {"1.5GiB", 3 << 29, ""},
		{"100", 100, ""}, {"1k", 1000, ""}, {"2Ki", 2048, ""}, {"8EiB", 0, "not a size"}, {"7PiB", 7 << 50, ""},
		{"-1Gi", 0, "negative"}, {"16 gigs", 0, "not a size"}, {"0.5", 0, "whole number of bytes"},
		{"9000000PiB", 0, "too large"}, {"1.2.3G", 0, "not a size"}, {"", 0, "not a size"}, {"GiB", 0, "not a size"},
		{"16 GiB", 16 << 30, ""},
	} {
		got, err := parseBytes(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("parseBytes(%q) = %d, %v; want error containing %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

func TestParseDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  string
	}{
		{"90s", 90 * time.Second, ""}, {"2h", 2 * time.Hour, ""}, {"1h30m", 90 * time.Minute, ""},
		{"1d", 24 * time.Hour, ""}, {"1d2h3m4s5ms", 26*time.Hour + 3*time.Minute + 4*time.Second + 5*time.Millisecond, ""},
		{"0s", 0, ""}, {"90", 0, "not a duration"}, {"30m1h", 0, "not a duration"}, {"1h1h", 0, "not a duration"},
		{"-5m", 0, "negative"}, {"1.5h", 0, "not a duration"}, {"9999999999d", 0, "too large"},
		{"106751d23h47m16s855ms", 0, "too large"}, {"106751d23h47m16s854ms", 1<<63 - 1 - 775807, ""}, {"106751d", 106751 * 24 * time.Hour, ""}, {"", 0, "not a duration"},
		{"1w", 0, "not a duration"},
	} {
		got, err := parseDuration(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("parseDuration(%q) = %v, %v; want error containing %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
		if err == nil {
			back, err := parseDuration(formatDuration(got))
			if err != nil || back != got {
				t.Errorf("formatDuration(%v) = %q does not parse back", got, formatDuration(got))
			}
		}
	}
}

func TestSuggest(t *testing.T) {
	keys := []string{"command", "cpu", "depends_on"}
	for in, want := range map[string]string{
		"comand": ` (did you mean "command"?)`, "cpus": ` (did you mean "cpu"?)`, "dependson": ` (did you mean "depends_on"?)`,
		"xyz": "", "q": "",
	} {
		if got := suggest(in, keys); got != want {
			t.Errorf("suggest(%q) = %q, want %q", in, got, want)
		}
	}
}
