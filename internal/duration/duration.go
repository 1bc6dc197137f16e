// Package duration is the one duration type of both halves' JSON
// configuration: Go's units plus `d` (24h) as a string, or integer
// nanoseconds, like caddy.Duration, but importable by the Caddy-free
// cores (policy, clientauth).
package duration

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration that reads `"90s"`, `"1h30m"`, `"7d"`,
// `"1.5d"` or integer nanoseconds from JSON. It is written as integer
// nanoseconds, as caddy.Duration is.
type Duration time.Duration

// ErrSyntax is the reason Parse gives for text that is not a duration.
var ErrSyntax = errors.New("not a duration; use a number and a unit (ns, us, ms, s, m, h, d), e.g. 90s, 15m, 7d")

// ErrRange is the reason Parse gives for a duration beyond about 290
// years, which time.Duration cannot hold.
var ErrRange = errors.New("duration out of range")

// maxLen bounds the input, as caddy.ParseDuration does.
const maxLen = 1024

// Parse reads Go's duration syntax with the extra unit `d`, a day of
// 24 hours, wherever a unit may stand (`7d`, `1d12h`, `1.5d`), as
// caddy.ParseDuration does.
func Parse(s string) (time.Duration, error) {
	if len(s) > maxLen {
		return 0, ErrSyntax
	}
	var out strings.Builder
	num := -1 // start of the number being read
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9' || c == '.':
			if num < 0 {
				num = i
			}
		case c == 'd' && num >= 0:
			days, err := strconv.ParseFloat(s[num:i], 64)
			if errors.Is(err, strconv.ErrRange) || days*24 > maxHours {
				return 0, ErrRange
			}
			if err != nil {
				return 0, ErrSyntax
			}
			out.WriteString(strconv.FormatFloat(days*24, 'f', -1, 64))
			out.WriteByte('h')
			num = -1
		default:
			if num >= 0 {
				out.WriteString(s[num:i])
				num = -1
			}
			out.WriteByte(c)
		}
	}
	if num >= 0 {
		out.WriteString(s[num:])
	}
	v, err := time.ParseDuration(out.String())
	if err != nil {
		if _, serr := time.ParseDuration(strings.Map(smallDigits, out.String())); serr == nil {
			return 0, ErrRange // well formed, only too large
		}
		return 0, ErrSyntax
	}
	return v, nil
}

// maxHours is about the longest time.Duration, in hours.
const maxHours = float64(1<<63-1) / float64(time.Hour)

// smallDigits turns every digit into 1, to tell a number too large from
// a malformed text.
func smallDigits(r rune) rune {
	if r >= '0' && r <= '9' {
		return '1'
	}
	return r
}

// UnmarshalJSON accepts a duration string (see Parse) or an integer of
// nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := Parse(s)
		if err != nil {
			return fmt.Errorf("duration %q: %w", s, err)
		}
		*d = Duration(v)
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("duration must be a string such as \"90s\" or \"7d\", or integer nanoseconds")
	}
	*d = Duration(n)
	return nil
}

// String formats d as time.Duration does.
func (d Duration) String() string { return time.Duration(d).String() }
