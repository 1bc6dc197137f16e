package keyset_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/apiaccess/caddy-apiaccess/caddymodule/keyset"
)

var (
	rsaOnce sync.Once
	rsaKeys []*rsa.PrivateKey
)

// rsaKey returns the i-th of a few RSA-2048 keys generated once.
func rsaKey(i int) *rsa.PrivateKey {
	rsaOnce.Do(func() {
		for range 3 {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			rsaKeys = append(rsaKeys, k)
		}
	})
	return rsaKeys[i]
}

func ecKey(c elliptic.Curve) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}

func edKey() ed25519.PrivateKey {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}

// jwkOf converts raw into a JWK with the given string members set.
func jwkOf(t testing.TB, raw any, members map[string]string) jwk.Key {
	t.Helper()
	k, err := jwk.FromRaw(raw)
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range members {
		var val any = v
		if name == jwk.AlgorithmKey {
			val = jwa.KeyAlgorithmFrom(v)
		}
		if err := k.Set(name, val); err != nil {
			t.Fatalf("set %s=%s: %v", name, v, err)
		}
	}
	return k
}

func parseKey(t testing.TB, js string) jwk.Key {
	t.Helper()
	k, err := jwk.ParseKey([]byte(js))
	if err != nil {
		t.Fatalf("parse %s: %v", js, err)
	}
	return k
}

func setOf(t testing.TB, keys ...jwk.Key) jwk.Set {
	t.Helper()
	s := jwk.NewSet()
	for _, k := range keys {
		if err := s.AddKey(k); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func algs(l ...jwa.SignatureAlgorithm) []jwa.SignatureAlgorithm { return l }

var rsaAlgs = algs(jwa.RS256, jwa.RS384, jwa.RS512, jwa.PS256, jwa.PS384, jwa.PS512)

func TestIndex(t *testing.T) {
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p256, p384, p521 := ecKey(elliptic.P256()), ecKey(elliptic.P384()), ecKey(elliptic.P521())
	ed := edKey()
	type entry struct {
		key  jwk.Key
		want []jwa.SignatureAlgorithm // nil: skipped
		bug  string
	}
	entries := map[string]entry{
		"rsa":              {key: jwkOf(t, &rsaKey(0).PublicKey, map[string]string{"kid": "rsa"}), want: rsaAlgs},
		"rsa-sig":          {key: jwkOf(t, &rsaKey(0).PublicKey, map[string]string{"kid": "rsa-sig", "use": "sig"}), want: rsaAlgs},
		"rsa-rs256":        {key: jwkOf(t, &rsaKey(0).PublicKey, map[string]string{"kid": "rsa-rs256", "alg": "RS256"}), want: algs(jwa.RS256)},
		"rsa-ps512":        {key: jwkOf(t, &rsaKey(0).PublicKey, map[string]string{"kid": "rsa-ps512", "alg": "PS512"}), want: algs(jwa.PS512)},
		"rsa-private":      {key: jwkOf(t, rsaKey(1), map[string]string{"kid": "rsa-private"})},
		"rsa-enc":          {key: jwkOf(t, &rsaKey(0).PublicKey, map[string]string{"kid": "rsa-enc", "use": "enc"})},
		"rsa-oaep":         {key: jwkOf(t, &rsaKey(0).PublicKey, map[string]string{"kid": "rsa-oaep", "alg": "RSA-OAEP-256"})},
		"rsa-hs256":        {key: jwkOf(t, &rsaKey(0).PublicKey, map[string]string{"kid": "rsa-hs256", "alg": "HS256"})},
		"rsa-es256":        {key: jwkOf(t, &rsaKey(0).PublicKey, map[string]string{"kid": "rsa-es256", "alg": "ES256"})},
		"rsa-none":         {key: jwkOf(t, &rsaKey(0).PublicKey, map[string]string{"kid": "rsa-none", "alg": "none"})},
		"rsa-1024":         {key: jwkOf(t, &small.PublicKey, map[string]string{"kid": "rsa-1024"})},
		"rsa-1024-rs256":   {key: jwkOf(t, &small.PublicKey, map[string]string{"kid": "rsa-1024-rs256", "alg": "RS256"})},
		"oct":              {key: jwkOf(t, []byte("0123456789abcdef0123456789abcdef"), map[string]string{"kid": "oct"})},
		"oct-hs256":        {key: jwkOf(t, []byte("0123456789abcdef0123456789abcdef"), map[string]string{"kid": "oct-hs256", "alg": "HS256", "use": "sig"})},
		"p256":             {key: jwkOf(t, &p256.PublicKey, map[string]string{"kid": "p256"}), want: algs(jwa.ES256)},
		"p256-es256":       {key: jwkOf(t, &p256.PublicKey, map[string]string{"kid": "p256-es256", "alg": "ES256"}), want: algs(jwa.ES256)},
		"p256-es384":       {key: jwkOf(t, &p256.PublicKey, map[string]string{"kid": "p256-es384", "alg": "ES384"})},
		"p256-rs256":       {key: jwkOf(t, &p256.PublicKey, map[string]string{"kid": "p256-rs256", "alg": "RS256"})},
		"p256-enc":         {key: jwkOf(t, &p256.PublicKey, map[string]string{"kid": "p256-enc", "use": "enc"})},
		"p256-private":     {key: jwkOf(t, p256, map[string]string{"kid": "p256-private"})},
		"p384":             {key: jwkOf(t, &p384.PublicKey, map[string]string{"kid": "p384"}), want: algs(jwa.ES384)},
		"p521":             {key: jwkOf(t, &p521.PublicKey, map[string]string{"kid": "p521"}), want: algs(jwa.ES512)},
		"p521-es256":       {key: jwkOf(t, &p521.PublicKey, map[string]string{"kid": "p521-es256", "alg": "ES256"})},
		"ed25519":          {key: jwkOf(t, ed.Public(), map[string]string{"kid": "ed25519"}), want: algs(jwa.EdDSA)},
		"ed25519-eddsa":    {key: jwkOf(t, ed.Public(), map[string]string{"kid": "ed25519-eddsa", "alg": "EdDSA"}), want: algs(jwa.EdDSA)},
		"ed25519-es256":    {key: jwkOf(t, ed.Public(), map[string]string{"kid": "ed25519-es256", "alg": "ES256"})},
		"ed25519-private":  {key: jwkOf(t, ed, map[string]string{"kid": "ed25519-private"})},
		"x25519":           {key: parseKey(t, `{"kty":"OKP","crv":"X25519","kid":"x25519","x":"hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo"}`)},
		"ed25519-short":    {key: parseKey(t, `{"kty":"OKP","crv":"Ed25519","kid":"ed25519-short","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHUR"}`), bug: "an Ed25519 key whose x is not 32 bytes is indexed (ed25519.Verify then panics)"},
		"ed25519-long":     {key: parseKey(t, `{"kty":"OKP","crv":"Ed25519","kid":"ed25519-long","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURoAAA"}`), bug: "an Ed25519 key whose x is not 32 bytes is indexed (ed25519.Verify then panics)"},
		"":                 {key: jwkOf(t, &rsaKey(0).PublicKey, nil)},
		"(no kid, ec)":     {key: jwkOf(t, &p256.PublicKey, nil)},
		"rsa-sig-upper":    {key: jwkOf(t, &rsaKey(0).PublicKey, map[string]string{"kid": "rsa-sig-upper", "use": "SIG"})},
		"rsa-unknown-use":  {key: jwkOf(t, &rsaKey(0).PublicKey, map[string]string{"kid": "rsa-unknown-use", "use": "tls"})},
		"rsa-alg-lower":    {key: jwkOf(t, &rsaKey(0).PublicKey, map[string]string{"kid": "rsa-alg-lower", "alg": "rs256"})},
		"p256-alg-es256k?": {key: jwkOf(t, &p256.PublicKey, map[string]string{"kid": "p256-alg-es256k?", "alg": "ES256K"})},
	}
	var keys []jwk.Key
	for _, e := range entries {
		keys = append(keys, e.key)
	}
	idx := keyset.Index(setOf(t, keys...))
	for name, e := range entries {
		t.Run(name, func(t *testing.T) {
			k, ok := idx[name]
			if e.want == nil {
				if name == "" || name == "(no kid, ec)" {
					if _, ok := idx[""]; ok {
						t.Fatalf("a key without kid was indexed")
					}
					return
				}
				if ok {
					t.Fatalf("indexed with algs %v; want skipped", k.Algs)
				}
				return
			}
			if !ok {
				t.Fatalf("skipped; want algs %v", e.want)
			}
			if k.KID != name {
				t.Fatalf("KID %q", k.KID)
			}
			if len(k.Algs) != len(e.want) {
				t.Fatalf("algs %v; want %v", k.Algs, e.want)
			}
			for i := range e.want {
				if k.Algs[i] != e.want[i] {
					t.Fatalf("algs %v; want %v", k.Algs, e.want)
				}
			}
			switch raw := k.Raw.(type) {
			case *rsa.PublicKey, *ecdsa.PublicKey:
			case ed25519.PublicKey:
				if len(raw) != ed25519.PublicKeySize {
					t.Fatalf("ed25519 key of %d bytes", len(raw))
				}
			default:
				t.Fatalf("raw key %T", k.Raw)
			}
			for _, a := range k.Algs {
				if a == jwa.HS256 || a == jwa.HS384 || a == jwa.HS512 || a == jwa.NoSignature {
					t.Fatalf("symmetric alg %s", a)
				}
			}
		})
	}
}

func TestIndexEmptySet(t *testing.T) {
	if n := len(keyset.Index(jwk.NewSet())); n != 0 {
		t.Fatalf("%d keys", n)
	}
}

// TestIndexFromJSON parses a JWKS as an issuer would publish it.
func TestIndexFromJSON(t *testing.T) {
	pub := jwkOf(t, &rsaKey(0).PublicKey, map[string]string{"kid": "a", "alg": "RS256", "use": "sig"})
	b, _ := json.Marshal(pub)
	set, err := jwk.Parse([]byte(`{"keys":[` + string(b) + `,{"kty":"oct","kid":"b","k":"c2VjcmV0"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	idx := keyset.Index(set)
	if len(idx) != 1 || idx["a"] == nil {
		t.Fatalf("index %v", idx)
	}
}

func TestAllows(t *testing.T) {
	k := &keyset.Key{KID: "k", Algs: algs(jwa.RS256, jwa.PS256)}
	for _, c := range []struct {
		alg jwa.SignatureAlgorithm
		ok  bool
	}{
		{jwa.RS256, true}, {jwa.PS256, true}, {jwa.RS384, false}, {jwa.HS256, false},
		{jwa.NoSignature, false}, {"", false}, {"rs256", false}, {"RS256 ", false},
	} {
		if got := k.Allows(c.alg); got != c.ok {
			t.Errorf("Allows(%q) = %v", c.alg, got)
		}
	}
	if (&keyset.Key{}).Allows(jwa.RS256) {
		t.Errorf("a key with no algs allows RS256")
	}
	// Keys from Index never allow HMAC or none.
	idx := keyset.Index(setOf(t, jwkOf(t, &rsaKey(0).PublicKey, map[string]string{"kid": "r"}), jwkOf(t, edKey().Public(), map[string]string{"kid": "e"})))
	for _, key := range idx {
		for _, a := range []jwa.SignatureAlgorithm{jwa.HS256, jwa.HS384, jwa.HS512, jwa.NoSignature} {
			if key.Allows(a) {
				t.Errorf("key %s allows %s", key.KID, a)
			}
		}
	}
}

func TestInProcess(t *testing.T) {
	ctx := context.Background()
	var cur atomic.Pointer[jwk.Set]
	var calls atomic.Int64
	src := keyset.NewInProcess(func() jwk.Set {
		calls.Add(1)
		if p := cur.Load(); p != nil {
			return *p
		}
		return nil
	}, false)

	// Before the issuer started.
	if _, err := src.Key(ctx, "a"); !errors.Is(err, keyset.ErrUnavailable) {
		t.Fatalf("err %v; want ErrUnavailable", err)
	}

	s1 := setOf(t, jwkOf(t, &rsaKey(0).PublicKey, map[string]string{"kid": "a"}), jwkOf(t, rsaKey(1), map[string]string{"kid": "priv"}))
	cur.Store(&s1)
	k1, err := src.Key(ctx, "a")
	if err != nil || k1.KID != "a" {
		t.Fatalf("key %v err %v", k1, err)
	}
	if k, _ := src.Key(ctx, "a"); k != k1 {
		t.Fatalf("same set was indexed again")
	}
	for _, kid := range []string{"b", "", "priv"} {
		if _, err := src.Key(ctx, kid); !errors.Is(err, keyset.ErrUnknownKID) {
			t.Fatalf("kid %q: err %v; want ErrUnknownKID", kid, err)
		}
	}

	// Rotation: the next call sees the new set; a removed key is gone.
	s2 := setOf(t, jwkOf(t, &rsaKey(2).PublicKey, map[string]string{"kid": "b"}))
	cur.Store(&s2)
	if k, err := src.Key(ctx, "b"); err != nil || k.KID != "b" {
		t.Fatalf("after rotation: %v %v", k, err)
	}
	if _, err := src.Key(ctx, "a"); !errors.Is(err, keyset.ErrUnknownKID) {
		t.Fatalf("removed key: err %v; want ErrUnknownKID", err)
	}

	// The issuer stopped.
	cur.Store(nil)
	if _, err := src.Key(ctx, "b"); !errors.Is(err, keyset.ErrUnavailable) {
		t.Fatalf("err %v; want ErrUnavailable", err)
	}
}

func TestInProcessConcurrentRotation(t *testing.T) {
	sets := []jwk.Set{
		setOf(t, jwkOf(t, &rsaKey(0).PublicKey, map[string]string{"kid": "a"}), jwkOf(t, &rsaKey(1).PublicKey, map[string]string{"kid": "common"})),
		setOf(t, jwkOf(t, &rsaKey(2).PublicKey, map[string]string{"kid": "b"}), jwkOf(t, &rsaKey(1).PublicKey, map[string]string{"kid": "common"})),
	}
	var which atomic.Int64
	src := keyset.NewInProcess(func() jwk.Set { return sets[which.Load()%2] }, false)
	stop := make(chan struct{})
	rotated := make(chan struct{})
	go func() {
		defer close(rotated)
		for {
			select {
			case <-stop:
				return
			default:
				which.Add(1)
			}
		}
	}()
	var readers sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for range 2000 {
				k, err := src.Key(context.Background(), "common")
				if err != nil || k.Raw.(*rsa.PublicKey).N.Cmp(rsaKey(1).N) != 0 {
					errs <- errors.New("common key lost during rotation")
					return
				}
			}
		}()
	}
	readers.Wait()
	close(stop)
	<-rotated
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestInProcessTyping: an in-process source says whether its issuer
// types every access token, as it was told; a remote one says nothing.
func TestInProcessTyping(t *testing.T) {
	for _, typed := range []bool{true, false} {
		var src keyset.Source = keyset.NewInProcess(func() jwk.Set { return nil }, typed)
		ty, ok := src.(keyset.Typed)
		if !ok || ty.TypesAccessTokens() != typed {
			t.Fatalf("NewInProcess(_, %v): Typed %v, TypesAccessTokens %v", typed, ok, ok && ty.TypesAccessTokens())
		}
	}
	if _, ok := keyset.Source(&keyset.Remote{}).(keyset.Typed); ok {
		t.Fatal("a remote source claims to know how its issuer types tokens")
	}
}
