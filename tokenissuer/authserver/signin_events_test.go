package authserver

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// TestSignInFailureEventsNameLoginAndAddress: a failed sign-in on the
// page and through the password grant, and the lockout they cause, are
// events that name the login tried and the client's address (what an
// operator needs to spot a guessing campaign), and never the password.
func TestSignInFailureEventsNameLoginAndAddress(t *testing.T) {
	e := newSignInEnv(t, embeddedStore(t), 1, nil, nil)
	const pageIP, grantIP = "203.0.113.7", "198.51.100.23"
	if r := e.signIn(e.open(0), "Alice@Example.com", "wrong-page-pw", pageIP); r.status != http.StatusUnauthorized {
		t.Fatalf("wrong password on the page: %d", r.status)
	}
	if r := e.signIn(e.open(0), "nobody@example.com", "wrong-page-pw", pageIP); r.status != http.StatusUnauthorized {
		t.Fatalf("unknown login on the page: %d", r.status)
	}
	for n := range maxUserFailures - 1 {
		status, _, m := e.grantFrom("alice@example.com", fmt.Sprintf("wrong-grant-%02d", n), grantIP)
		badCredentials(t, "wrong password through the grant", status, m)
	}

	signIns := e.logs.FilterMessage(EventSignIn).All()
	if len(signIns) != 2 {
		t.Fatalf("%d sign-in events, want 2", len(signIns))
	}
	for i, want := range []string{"alice@example.com", "nobody@example.com"} {
		f := signIns[i].ContextMap()
		if f["outcome"] != "FAILURE" || f["login"] != want || f["client_ip"] != pageIP {
			t.Errorf("sign-in failure event %v, want login %s and client_ip %s", f, want, pageIP)
		}
	}
	denied := e.logs.FilterMessage(EventTokenDenied).All()
	if len(denied) != maxUserFailures-1 {
		t.Fatalf("%d password-grant failure events, want %d", len(denied), maxUserFailures-1)
	}
	for _, d := range denied {
		if f := d.ContextMap(); f["login"] != "alice@example.com" || f["client_ip"] != grantIP || f["grant_type"] != GrantPassword {
			t.Fatalf("password-grant failure event %v, want login and client_ip %s", f, grantIP)
		}
	}
	// The tenth failure (page and grant count together) locks alice.
	locks := e.logs.FilterMessage(EventAccountLock).All()
	if len(locks) != 1 {
		t.Fatalf("%d lockout events, want 1", len(locks))
	}
	if f := locks[0].ContextMap(); f["login"] != "alice@example.com" || f["client_ip"] != grantIP || f["user_id"] != "00u1alice" {
		t.Fatalf("lockout event %v, want alice's login and the address %s that locked her", f, grantIP)
	}
	for _, entry := range e.logs.All() {
		line := fmt.Sprint(entry.Message, entry.ContextMap())
		if strings.Contains(line, "wrong-") || strings.Contains(line, alicePass) {
			t.Fatalf("a password reached the log: %s", line)
		}
	}
}
