package ui

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPostMessagePage: the okta_post_message page posts its data to the
// given origin only, with the nonce on its one script, and data that
// tries to end the script stays a JS string. A replacement directory
// cannot replace it.
func TestPostMessagePage(t *testing.T) {
	dir := t.TempDir()
	for _, name := range append(Names, PostMessageTemplate) {
		b, err := builtin.ReadFile("templates/" + name)
		if err != nil {
			t.Fatal(err)
		}
		if name == PostMessageTemplate {
			b = []byte(`<script>parent.postMessage({{.Data}}, "*")</script>`)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"", dir} {
		p, err := Load(d)
		if err != nil {
			t.Fatal(err)
		}
		var out strings.Builder
		evil := `x</script><script>alert(1)</script>"'`
		if err := p.RenderPostMessage(&out, PostMessage{Nonce: "n0nce", Origin: "https://app.example.com",
			Data: map[string]string{"code": "c", "state": evil}}); err != nil {
			t.Fatal(err)
		}
		page := out.String()
		if strings.Count(page, "<script") != 1 || !strings.Contains(page, `<script nonce="n0nce">`) ||
			!strings.Contains(page, `postMessage(data, origin)`) || !strings.Contains(page, `var origin = "https://app.example.com";`) ||
			strings.Contains(page, `"*"`) || strings.Contains(page, "alert(1)</script>") {
			t.Errorf("dir %q: page:\n%s", d, page)
		}
	}
}
