package ui

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOptionalTemplateFallsBack: a replacement directory made before
// logout.html and device_done.html existed still loads; the built-in
// pages render inside the directory's layout. A missing required template fails.
func TestOptionalTemplateFallsBack(t *testing.T) {
	dir := t.TempDir()
	for _, name := range Names {
		b, err := builtin.ReadFile("templates/" + name)
		if err != nil {
			t.Fatal(err)
		}
		if name == "layout.html" {
			b = []byte(strings.Replace(string(b), "<main>", `<main class="custom">`, 1))
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := p.RenderLogout(&out, Logout{Title: "Sign out", Site: "id.example.com", CSRF: "tok", Params: map[string]string{"state": "s"}}); err != nil {
		t.Fatal(err)
	}
	if page := out.String(); !strings.Contains(page, `class="custom"`) || !strings.Contains(page, "Sign out of id.example.com?") || !strings.Contains(page, `name="csrf" value="tok"`) {
		t.Fatalf("logout page: %s", page)
	}
	out.Reset()
	if err := p.RenderDeviceDone(&out, DeviceDone{Title: "Device connected", ClientName: "<TV>", Approved: true}); err != nil {
		t.Fatal(err)
	}
	if page := out.String(); !strings.Contains(page, `class="custom"`) || !strings.Contains(page, "<h1>Device connected</h1>") || !strings.Contains(page, "&lt;TV&gt;") {
		t.Fatalf("device result page: %s", page)
	}
	_ = os.Remove(filepath.Join(dir, "device.html"))
	if _, err := Load(dir); err == nil {
		t.Fatal("a directory without a required template loaded")
	}
}
