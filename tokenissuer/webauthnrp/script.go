package webauthnrp

import (
	"bytes"
	"crypto/sha512"
	_ "embed"
	"encoding/base64"
	"net/http"
	"time"
)

// Script is webauthn.js, the browser half: see the file's header for
// the markup it drives.
//
//go:embed webauthn.js
var Script []byte

// ScriptIntegrity is Script's subresource integrity value, for
// <script integrity="...">.
var ScriptIntegrity = func() string {
	h := sha512.Sum384(Script)
	return "sha384-" + base64.StdEncoding.EncodeToString(h[:])
}()

var scriptTime = time.Now()

// ScriptHandler serves Script (GET or HEAD) as JavaScript, with
// nosniff and a short public cache.
func ScriptHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "text/javascript; charset=utf-8")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "public, max-age=3600")
		http.ServeContent(w, r, "webauthn.js", scriptTime, bytes.NewReader(Script))
	})
}
