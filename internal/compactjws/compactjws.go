// Package compactjws splits a JWS in the compact serialization (RFC 7515
// section 7.1) strictly, for the gateway's token checks and the DPoP
// proof checks: one pass over the text, before anything is decoded.
package compactjws

// b64url marks the base64url alphabet (RFC 4648 section 5).
var b64url = func() (t [256]bool) {
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") {
		t[c] = true
	}
	return t
}()

// Split returns the three base64url parts of s, or ok false unless s is
// exactly three non-empty parts of the base64url alphabet and two dots.
// No JSON serialization, no detached payload, and nothing the decoder
// would skip (CR, LF), which would make one token valid under many
// spellings.
func Split(s string) (header, payload, signature string, ok bool) {
	var dot [2]int
	dots := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '.':
			if dots == len(dot) {
				return "", "", "", false
			}
			dot[dots] = i
			dots++
		case !b64url[c]:
			return "", "", "", false
		}
	}
	if dots != 2 || dot[0] == 0 || dot[1] == dot[0]+1 || dot[1] == len(s)-1 {
		return "", "", "", false
	}
	return s[:dot[0]], s[dot[0]+1 : dot[1]], s[dot[1]+1:], true
}
