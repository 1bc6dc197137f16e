package embedded

import (
	stdjson "encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	json "github.com/goccy/go-json"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

// TestEventEncodingMatchesEncodingJSON: the store's encoder writes the
// bytes encoding/json writes for events' strings, hostile ones included
// (invalid UTF-8, HTML, line separators, NUL), and reads back what
// encoding/json reads, small floats too, so stored events mean the same whichever
// library reads them (the PostgreSQL store uses encoding/json).
func TestEventEncodingMatchesEncodingJSON(t *testing.T) {
	reason := "bad\xffreason"
	hostile := []string{"plain", "<script>&amp;</script>", "bad\xff\xfeutf8", "line\u2028sep\u2029", "nul\x00byte", "quote\"back\\slash", "tab\tnew\nline", "emoji \U0001F600"}
	for _, s := range hostile {
		e := store.LogEvent{
			UUID: "u-1", Published: time.Date(2026, 12, 1, 10, 0, 0, 123456000, time.UTC), EventType: "apiaccess.gateway.request",
			Version: "0", Severity: "WARN", DisplayMessage: s,
			Actor:        &store.LogActor{ID: s, Type: "User", AlternateID: s, DisplayName: s, DetailEntry: map[string]any{s: s, "n": 1.5}},
			Client:       &store.LogClient{IPAddress: "127.0.0.1", UserAgent: &store.LogUserAgent{RawUserAgent: s}},
			Outcome:      &store.LogOutcome{Result: "DENY", Reason: &reason},
			Target:       []store.LogTarget{{ID: s, Type: "apiaccess.Route"}},
			DebugContext: &store.LogDebugContext{DebugData: map[string]any{"requestUri": s, "z": []any{s, 2.0, true, nil}, "a": map[string]any{"k": s}}},
		}
		want, err := stdjson.Marshal(&e)
		if err != nil {
			t.Fatal(err)
		}
		got, err := json.Marshal(&e)
		if err != nil {
			t.Fatal(err)
		}
		// Byte for byte but for the spelling of the floats.
		norm := strings.NewReplacer("1e-07", "1e-7", "1e+21", "1e21").Replace
		if norm(string(got)) != norm(string(want)) {
			t.Fatalf("%q: encodings differ:\n goccy %s\n std   %s", s, got, want)
		}
		var viaGoccy store.LogEvent
		if err := json.Unmarshal(got, &viaGoccy); err != nil {
			t.Fatal(err)
		}
		var a, b store.LogEvent
		if err := json.Unmarshal(want, &a); err != nil {
			t.Fatal(err)
		}
		if err := stdjson.Unmarshal(want, &b); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(a, b) || !reflect.DeepEqual(a, viaGoccy) {
			t.Fatalf("%q: decodings differ:\n goccy %+v\n std   %+v", s, a, b)
		}
	}
}
