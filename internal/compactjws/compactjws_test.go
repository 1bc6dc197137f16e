package compactjws

import "testing"

func TestSplit(t *testing.T) {
	if h, p, s, ok := Split("aGVh.cGF5-_.c2ln"); !ok || h != "aGVh" || p != "cGF5-_" || s != "c2ln" {
		t.Fatalf("Split of a good token: %q %q %q %v", h, p, s, ok)
	}
	for _, bad := range []string{"", "a.b", "a.b.c.d", ".b.c", "a..c", "a.b.", "a.b.c=", "a.b\n.c", "a.b.c\r", "a+b.c.d", "a/b.c.d", "a.b.c "} {
		if _, _, _, ok := Split(bad); ok {
			t.Errorf("Split(%q) accepted", bad)
		}
	}
}
