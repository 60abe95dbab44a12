package policy

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestDurationString(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"},
		{3 * day, "3d"},
		{72 * time.Hour, "3d"},
		{36 * time.Hour, "36h"},
		{90 * time.Minute, "1h30m"},
		{time.Hour, "1h"},
		{15 * time.Minute, "15m"},
		{10 * time.Second, "10s"},
		{time.Hour + time.Second, "1h0m1s"},
		{1500 * time.Millisecond, "1.5s"},
		{-2 * day, "-2d"},
		{-90 * time.Minute, "-1h30m"},
	} {
		if got := Duration(tt.d).String(); got != tt.want {
			t.Errorf("Duration(%v) = %q, want %q", tt.d, got, tt.want)
		}
		back, err := ParseDuration(tt.want)
		if err != nil || back.D() != tt.d {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", tt.want, back.D(), err, tt.d)
		}
	}
}

func TestDurationJSON(t *testing.T) {
	for in, want := range map[string]time.Duration{
		`"3d"`:            3 * day,
		`"72h"`:           72 * time.Hour,
		`"1h30m"`:         90 * time.Minute,
		`"10s"`:           10 * time.Second,
		`"2d12h"`:         60 * time.Hour,
		`"0s"`:            0,
		`259200000000000`: 3 * day, // nanoseconds, as older runs recorded them
		`0`:               0,
		`-900000000000`:   -15 * time.Minute,
		` "15m" `:         15 * time.Minute,
		`"-1d"`:           -day,
		`"1h0m0s"`:        time.Hour,
		`"100ms"`:         100 * time.Millisecond,
		`"0d"`:            0,
		`"1d0h"`:          day,
	} {
		var d Duration
		if err := json.Unmarshal([]byte(in), &d); err != nil || d.D() != want {
			t.Errorf("unmarshal %s = %v, %v; want %v", in, d.D(), err, want)
		}
	}
	for _, in := range []string{`"3x"`, `"d"`, `"3"`, `"1d-2h"`, `"--1h"`, `""`, `1.5`, `true`, `"3 d"`, `"1h3d"`} {
		var d Duration
		if err := json.Unmarshal([]byte(in), &d); err == nil {
			t.Errorf("unmarshal %s = %v, want an error", in, d.D())
		}
	}
	b, err := json.Marshal(struct {
		A Duration   `json:"a"`
		B []Duration `json:"b"`
	}{Duration(3 * day), durations(15*time.Minute, 36*time.Hour)})
	if err != nil || string(b) != `{"a":"3d","b":["15m","36h"]}` {
		t.Errorf("marshal = %s, %v", b, err)
	}
}

// Policies recorded in older run inputs carry nanoseconds; they decode to
// the same policy, and re-encode in the human form.
func TestPolicyDecodesNanoseconds(t *testing.T) {
	p := Default()
	legacy := strings.NewReplacer(`"3d"`, "259200000000000", `"7d"`, "604800000000000", `"14d"`, "1209600000000000",
		`"21d"`, "1814400000000000", `"15m"`, "900000000000", `"0s"`, "0", `"6d"`, "518400000000000")
	b, _ := json.Marshal(p)
	old := legacy.Replace(string(b))
	if strings.Contains(old, `"3d"`) {
		t.Fatal("replacement did not apply")
	}
	var q Policy
	if err := json.Unmarshal([]byte(old), &q); err != nil {
		t.Fatal(err)
	}
	if q.Hash() != p.Hash() {
		t.Errorf("decoded policy differs: %s vs %s", q.Ref(), p.Ref())
	}
}

// durations converts a list for callers that work in time.Duration.
func durations(ds ...time.Duration) []Duration {
	out := make([]Duration, len(ds))
	for i, d := range ds {
		out[i] = Duration(d)
	}
	return out
}
