package authserver

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// Finding 17: a pending request yields one answer. The sign-in form
// posted twice with the right password gave two codes; so did the
// consent form; now the second post gets the expired page.
func TestSignInFormSingleUse(t *testing.T) {
	e := newSignInEnv(t, embeddedStore(t), 1, nil, nil)
	p := e.open(0)
	first := e.signIn(p, "alice@example.com", alicePass, "")
	if first.code() == "" {
		t.Fatalf("first post: %d %q", first.status, first.location)
	}
	again := e.signIn(p, "alice@example.com", alicePass, "")
	if again.code() != "" || again.session() || again.status != http.StatusBadRequest || !strings.Contains(again.body, "expired") {
		t.Fatalf("second post of the same sign-in form: %d %q session=%v, want 400 expired", again.status, again.location, again.session())
	}
}

func TestConsentFormSingleUse(t *testing.T) {
	e := newSignInEnv(t, embeddedStore(t), 1, nil, func(o *Options) {
		o.Servers["default"].Scopes = []*Scope{{Name: "orders:read", Consent: "required"}}
	})
	p := e.open(0)
	r := e.signIn(p, "alice@example.com", alicePass, "")
	if r.status != http.StatusOK || !strings.Contains(r.body, `name="decision"`) {
		t.Fatalf("sign-in did not ask for consent: %d %.200s", r.status, r.body)
	}
	consent := pending{node: 0, txn: formField(t, r.body, "txn"), csrf: formField(t, r.body, "csrf"), cookies: r.cookies}
	// Posted together, as a double click or a replaying script would.
	const k = 8
	results := make([]result, k)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for j := range k {
		wg.Go(func() {
			<-start
			results[j] = e.post(consent, "/oauth2/v1/consent", url.Values{"decision": {"allow"}}, "")
		})
	}
	close(start)
	wg.Wait()
	codes := 0
	for _, res := range results {
		switch {
		case res.code() != "":
			codes++
		case res.status != http.StatusBadRequest || !strings.Contains(res.body, "expired"):
			t.Fatalf("a repeated consent post answered %d %q: %.200s", res.status, res.location, res.body)
		}
	}
	if codes != 1 {
		t.Fatalf("%d posts of one consent form gave %d codes, want 1", k, codes)
	}
}

// One sign-in page takes maxTxnAttempts passwords, then expires: the
// right password on the same page afterwards gets nothing, although the
// login's own limit is not reached.
func TestSignInPageAttemptsBounded(t *testing.T) {
	e := newSignInEnv(t, embeddedStore(t), 1, nil, nil)
	p := e.open(0)
	for n := 1; n <= maxTxnAttempts; n++ {
		r := e.signIn(p, "alice@example.com", fmt.Sprint("wrong", n), "")
		if r.status != http.StatusUnauthorized {
			t.Fatalf("wrong password %d on one page: %d", n, r.status)
		}
		if last := n == maxTxnAttempts; last != strings.Contains(r.body, "expired") {
			t.Fatalf("wrong password %d: expired page = %v, want %v", n, !last, last)
		}
	}
	r := e.signIn(p, "alice@example.com", alicePass, "")
	if r.code() != "" || r.session() || r.status != http.StatusBadRequest {
		t.Fatalf("the right password on a page that had %d attempts: %d %q session=%v", maxTxnAttempts, r.status, r.location, r.session())
	}
	// A fresh page still works: the login is not locked.
	if r := e.signIn(e.open(0), "alice@example.com", alicePass, ""); r.code() == "" {
		t.Fatalf("a fresh page: %d", r.status)
	}
}
