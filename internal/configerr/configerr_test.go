package configerr

import (
	"errors"
	"io"
	"reflect"
	"testing"
)

func TestNesting(t *testing.T) {
	err := In("authorization_server", "default", In("policy", "p", In("rule", "r", Fieldf("access_token_lifetime", "access_token_lifetime 1m is too short"))))
	if got, want := err.Error(), `authorization server "default": policy "p": rule "r": access_token_lifetime 1m is too short`; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatal("not an *Error")
	}
	want := []Item{{"authorization_server", "default"}, {"policy", "p"}, {"rule", "r"}}
	if !reflect.DeepEqual(e.Items, want) || e.Field != "access_token_lifetime" {
		t.Errorf("items %v field %q", e.Items, e.Field)
	}
	if !errors.Is(In("client", "c", io.EOF), io.EOF) {
		t.Error("cause lost")
	}
	if In("client", "c", nil) != nil || Field("f", nil) != nil {
		t.Error("nil not kept")
	}
}
