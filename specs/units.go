package specs

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"
)

// Unit parsing. Every quantity in a spec is written as text with a unit and
// normalised to an integer: millicores, bytes, nanoseconds, minor units.
// The parsers return messages meant to follow "field: " in an error.

var (
	errNegative = errors.New("must not be negative")
	errOverflow = errors.New("is too large (overflows a 64-bit integer)")
)

// maxMilliCPU bounds a CPU request: a million cores is more than any
// provider offers and keeps every product with durations far from overflow.
const maxMilliCPU = 1_000_000 * 1000

// parseCPU reads "500m" (millicores), "2" or "0.5" (cores) into millicores.
func parseCPU(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "-") {
		return 0, errNegative
	}
	if m, ok := strings.CutSuffix(s, "m"); ok {
		if !allDigits(m) {
			return 0, fmt.Errorf("%q is not a CPU quantity (use millicores like 500m or cores like 2 or 0.5)", s)
		}
		v, err := strconv.ParseInt(m, 10, 64)
		if err != nil || v > maxMilliCPU {
			return 0, errOverflow
		}
		return v, nil
	}
	whole, frac, _ := strings.Cut(s, ".")
	if !allDigits(whole) || (frac != "" && !allDigits(frac)) || (strings.Contains(s, ".") && frac == "") {
		return 0, fmt.Errorf("%q is not a CPU quantity (use millicores like 500m or cores like 2 or 0.5)", s)
	}
	if len(frac) > 3 {
		return 0, fmt.Errorf("%q is finer than a millicore", s)
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || w > maxMilliCPU/1000 {
		return 0, errOverflow
	}
	f := int64(0)
	if frac != "" {
		f, _ = strconv.ParseInt((frac + "000")[:3], 10, 64)
	}
	v := w*1000 + f
	if v > maxMilliCPU {
		return 0, errOverflow
	}
	return v, nil
}

// byteUnits maps a suffix to its multiplier: SI (k, M, G: powers of 1000)
// and binary (Ki, Mi, Gi: powers of 1024), each with or without a trailing B.
var byteUnits = map[string]int64{
	"": 1, "B": 1,
	"k": 1e3, "K": 1e3, "kB": 1e3, "KB": 1e3,
	"M": 1e6, "MB": 1e6,
	"G": 1e9, "GB": 1e9,
	"T": 1e12, "TB": 1e12,
	"P": 1e15, "PB": 1e15,
	"Ki": 1 << 10, "KiB": 1 << 10,
	"Mi": 1 << 20, "MiB": 1 << 20,
	"Gi": 1 << 30, "GiB": 1 << 30,
	"Ti": 1 << 40, "TiB": 1 << 40,
	"Pi": 1 << 50, "PiB": 1 << 50,
}

// parseBytes reads "16GiB", "512Mi", "1G", "1.5GB" or a plain byte count.
func parseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "-") {
		return 0, errNegative
	}
	i := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
		i++
	}
	num, unit := s[:i], strings.TrimSpace(s[i:])
	mult, ok := byteUnits[unit]
	if num == "" || !ok || strings.Count(num, ".") > 1 || strings.HasPrefix(num, ".") || strings.HasSuffix(num, ".") {
		return 0, fmt.Errorf("%q is not a size (use e.g. 512MiB, 16GiB, 1G or a byte count)", s)
	}
	if len(num) > 30 {
		return 0, errOverflow
	}
	r, ok := new(big.Rat).SetString(num)
	if !ok {
		return 0, fmt.Errorf("%q is not a size", s)
	}
	r.Mul(r, new(big.Rat).SetInt64(mult))
	if !r.IsInt() {
		return 0, fmt.Errorf("%q is not a whole number of bytes", s)
	}
	n := r.Num()
	if !n.IsInt64() {
		return 0, errOverflow
	}
	return n.Int64(), nil
}

// durationUnits in the order they must appear: "1d2h30m", "90s", "500ms".
var durationUnits = []struct {
	name string
	d    time.Duration
}{
	{"d", 24 * time.Hour}, {"h", time.Hour}, {"m", time.Minute}, {"s", time.Second}, {"ms", time.Millisecond},
}

// parseDuration reads a sequence of integer-and-unit pairs (d, h, m, s, ms),
// largest unit first, each at most once: "90s", "2h", "1h30m", "1d".
func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "-") {
		return 0, errNegative
	}
	bad := fmt.Errorf("%q is not a duration (use e.g. 90s, 5m, 1h30m, 2h, 1d)", s)
	if s == "" {
		return 0, bad
	}
	var total time.Duration
	next := 0 // index into durationUnits of the smallest unit still allowed
	for s != "" {
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == 0 {
			return 0, bad
		}
		digits := s[:i]
		s = s[i:]
		j := 0
		for j < len(s) && s[j] >= 'a' && s[j] <= 'z' {
			j++
		}
		unit := s[:j]
		s = s[j:]
		k := -1
		for u := next; u < len(durationUnits); u++ {
			if durationUnits[u].name == unit {
				k = u
				break
			}
		}
		if k < 0 {
			return 0, bad
		}
		next = k + 1
		n, err := strconv.ParseInt(digits, 10, 64)
		if err != nil || n > int64(math.MaxInt64/durationUnits[k].d) {
			return 0, errOverflow
		}
		add := time.Duration(n) * durationUnits[k].d
		if total > math.MaxInt64-add {
			return 0, errOverflow
		}
		total += add
	}
	return total, nil
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// formatDuration writes d in the spec's own notation ("1h30m", "90s").
func formatDuration(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	var b strings.Builder
	for _, u := range durationUnits {
		if n := d / u.d; n > 0 {
			fmt.Fprintf(&b, "%d%s", n, u.name)
			d -= n * u.d
		}
	}
	if d > 0 {
		fmt.Fprintf(&b, "%dns", d)
	}
	return b.String()
}
