package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration that policy files write the way people do:
// "3d", "72h", "1h30m", "15m", "10s". It marshals to the most compact such
// string (whole days as "Nd", otherwise hours, minutes and seconds without
// zero units, e.g. "36h", "1h30m", "2s") and unmarshals from those strings or
// from a JSON number of nanoseconds, the form older runs recorded.
type Duration time.Duration

// D is the duration as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String is the compact form, e.g. "3d" or "1h30m".
func (d Duration) String() string {
	v := time.Duration(d)
	if v == 0 {
		return "0s"
	}
	if v%day == 0 {
		return strconv.FormatInt(int64(v/day), 10) + "d"
	}
	s := v.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// ParseDuration reads "3d", "72h", "1h30m", "2d12h", "10s" and the like. Days
// are 24 hours; a leading "-" negates the whole value.
func ParseDuration(s string) (Duration, error) {
	orig := s
	neg := false
	if strings.HasPrefix(s, "-") {
		neg, s = true, s[1:]
	}
	var total time.Duration
	if i := strings.IndexByte(s, 'd'); i >= 0 {
		n, err := strconv.ParseInt(s[:i], 10, 64)
		if err != nil || n < 0 || n > int64(1<<62/int64(day)) {
			return 0, fmt.Errorf("%q is not a duration (use e.g. 3d, 72h, 1h30m, 10s)", orig)
		}
		total, s = time.Duration(n)*day, s[i+1:]
		if s == "" {
			return sign(total, neg), nil
		}
	}
	if s == "" || strings.HasPrefix(s, "-") || strings.HasPrefix(s, "+") {
		return 0, fmt.Errorf("%q is not a duration (use e.g. 3d, 72h, 1h30m, 10s)", orig)
	}
	rest, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (use e.g. 3d, 72h, 1h30m, 10s)", orig)
	}
	return sign(total+rest, neg), nil
}

func sign(d time.Duration, neg bool) Duration {
	if neg {
		return Duration(-d)
	}
	return Duration(d)
}

// MarshalJSON writes the compact string form.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(d.String())
}

// UnmarshalJSON accepts a duration string or a number of nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		v, err := ParseDuration(s)
		if err != nil {
			return durationError(string(b))
		}
		*d = v
		return nil
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return durationError(string(b))
	}
	*d = Duration(n)
	return nil
}

// durationError is a json.UnmarshalTypeError so the decoder adds the field
// it was reading to the message.
func durationError(value string) error {
	return &json.UnmarshalTypeError{
		Value: "duration " + value + " (use e.g. \"3d\", \"72h\", \"1h30m\", \"10s\")",
		Type:  reflect.TypeFor[Duration](),
	}
}
