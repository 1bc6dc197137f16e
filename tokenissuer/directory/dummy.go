package directory

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// DummyHasher is implemented by directories that know their users'
// hashes. An unknown login, or a user without a password, is checked
// against DummyHash(login) so that it costs what a known login costs:
// the hash has the algorithm and parameters of one of the directory's
// own hashes, picked by a keyed hash of the login, so over all logins
// the costs of unknown ones are distributed as the users' are, and one
// login always costs the same. It matches no password.
type DummyHasher interface {
	DummyHash(login string) string
}

// defaultDummy is the dummy of directories that do not implement
// DummyHasher: a hash with the parameters `caddy
// apiaccess-hash-password` uses by default.
var defaultDummy = dummyOf(fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
	strings.Repeat("A", 22), strings.Repeat("A", 43)))

// dummyFor is the hash an unknown login of d is checked against.
func dummyFor(d Directory, login string) string {
	if dh, ok := d.(DummyHasher); ok {
		if h := dh.DummyHash(login); h != "" {
			return h
		}
	}
	return defaultDummy
}

// shape is what decides a hash's cost: its algorithm and parameters,
// and the lengths of its salt and key; not their values.
func shape(hash string) (string, bool) {
	switch {
	case strings.HasPrefix(hash, "$2a$"), strings.HasPrefix(hash, "$2b$"), strings.HasPrefix(hash, "$2y$"):
		cost, err := bcrypt.Cost([]byte(hash))
		if err != nil {
			return "", false
		}
		return hash[:4] + fmt.Sprintf("%02d", cost), true
	case strings.HasPrefix(hash, "$argon2id$"):
		p, err := parseArgon2id(hash)
		if err != nil {
			return "", false
		}
		return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%d$%d", argon2.Version, p.memory, p.time, p.threads, len(p.salt), len(p.key)), true
	}
	return "", false
}

// bcryptAlphabet is bcrypt's base64 alphabet.
const bcryptAlphabet = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// dummyOf returns a hash of hash's shape with a random salt and key. It
// parses as hash does, so checking it does the same work; its key is
// random, so no password matches it. Making one costs no hashing.
func dummyOf(hash string) string {
	s, ok := shape(hash)
	if !ok {
		return ""
	}
	if strings.HasPrefix(s, "$2") {
		// $2a$12$ + 22 characters of salt + 31 of hash; the last salt
		// character carries 4 bits, so it comes from a subset that
		// decodes with no stray bits.
		b := make([]byte, 53)
		_, _ = rand.Read(b)
		for i := range b {
			b[i] = bcryptAlphabet[int(b[i])%len(bcryptAlphabet)]
		}
		b[21] = ".Oeu"[int(b[21])%4]
		b[52] = ".Oeu"[int(b[52])%4]
		return s + "$" + string(b)
	}
	var memory, time, threads, saltLen, keyLen int
	if _, err := fmt.Sscanf(s[len("$argon2id$v=19$"):], "m=%d,t=%d,p=%d$%d$%d", &memory, &time, &threads, &saltLen, &keyLen); err != nil {
		return ""
	}
	salt, key := make([]byte, saltLen), make([]byte, keyLen)
	_, _ = rand.Read(salt)
	_, _ = rand.Read(key)
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, memory, time, threads, enc.EncodeToString(salt), enc.EncodeToString(key))
}

// dummies picks, for any login, the dummy of one user's hash shape.
type dummies struct {
	key  []byte   // HMAC key: secret, the same on every node
	pick []string // one entry per user with a password, in file order
}

// newDummies builds the dummies of a set of password hashes: one per
// distinct shape, shared by the users of that shape. The key is derived
// from the hashes themselves (their salts are secret), so every node
// loading the same directory picks the same dummy for a login, and a
// restart does not change what an unknown login costs.
func newDummies(hashes []string) *dummies {
	d := &dummies{}
	byShape := map[string]string{}
	mac := sha256.New()
	mac.Write([]byte("apiaccess dummy-hash key\x00"))
	for _, h := range hashes {
		s, ok := shape(h)
		if !ok {
			continue
		}
		if byShape[s] == "" {
			byShape[s] = dummyOf(h)
		}
		d.pick = append(d.pick, byShape[s])
		mac.Write([]byte(strconv.Itoa(len(h))))
		mac.Write([]byte(h))
	}
	d.key = mac.Sum(nil)
	return d
}

// For returns the dummy for login; "" when no user has a password.
func (d *dummies) For(login string) string {
	if len(d.pick) == 0 {
		return ""
	}
	m := hmac.New(sha256.New, d.key)
	m.Write([]byte(NormalizeLogin(login)))
	n := binary.BigEndian.Uint64(m.Sum(nil))
	return d.pick[n%uint64(len(d.pick))]
}
