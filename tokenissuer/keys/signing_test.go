package keys

import (
	"encoding/base64"
	"encoding/json"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jws"
)

// TestPreparedSigning: the issuer builds tokens from the set's encoded
// headers and Signer/SignKey (authserver/sign.go), not from jwx's
// Sign. Access tokens must carry typ "at+jwt" (RFC 9068 section 2.1),
// ID tokens typ "JWT", both the active alg and kid, and the signature
// must verify against the published keys, for every algorithm.
func TestPreparedSigning(t *testing.T) {
	for _, alg := range Supported {
		t.Run(string(alg), func(t *testing.T) {
			m := NewManager("default", alg, openStore(t), sealer(t, secret1), retention, newClock().Now)
			ensure(t, m)
			set := m.Current()
			kid := set.Active.KeyID()
			for _, c := range []struct{ header, typ string }{{set.Header, "at+jwt"}, {set.IDHeader, "JWT"}} {
				header, typ := c.header, c.typ
				raw, err := base64.RawURLEncoding.DecodeString(header)
				if err != nil {
					t.Fatalf("header %q is not base64url: %v", header, err)
				}
				var h map[string]string
				if err := json.Unmarshal(raw, &h); err != nil {
					t.Fatalf("header %s is not JSON: %v", raw, err)
				}
				if h["alg"] != string(alg) || h["kid"] != kid || h["typ"] != typ || len(h) != 3 {
					t.Fatalf("header %s, want alg %s kid %s typ %s", raw, alg, kid, typ)
				}
				input := header + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"svc"}`))
				sig, err := set.Signer.Sign([]byte(input), set.SignKey)
				if err != nil {
					t.Fatalf("Signer.Sign with SignKey: %v", err)
				}
				tok := input + "." + base64.RawURLEncoding.EncodeToString(sig)
				if _, err := jws.Verify([]byte(tok), jws.WithKeySet(set.Public)); err != nil {
					t.Fatalf("a %s token built like the issuer's does not verify: %v", typ, err)
				}
			}
		})
	}
}
