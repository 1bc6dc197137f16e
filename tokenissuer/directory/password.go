package directory

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// Argon2id parameters for new hashes (RFC 9106 section 4, second
// recommended option: 64 MiB, 3 passes).
const (
	argonTime    = 3
	argonMemory  = 64 * 1024
	argonThreads = 4
	argonKeyLen  = 32
)

// ErrUnknownHash means a stored hash is in no supported format.
var ErrUnknownHash = errors.New("password hash is neither bcrypt nor argon2id (PHC string)")

// HashArgon2id returns a PHC string: $argon2id$v=19$m=..,t=..,p=..$salt$hash.
func HashArgon2id(password string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		enc.EncodeToString(salt), enc.EncodeToString(key)), nil
}

// HashBcrypt returns a bcrypt hash at cost 12.
func HashBcrypt(password string) (string, error) {
	b, err := bcrypt.GenerateFromPassword([]byte(password), 12)
	return string(b), err
}

// CheckHash reports whether hash is in a supported format.
func CheckHash(hash string) error {
	switch {
	case strings.HasPrefix(hash, "$2a$"), strings.HasPrefix(hash, "$2b$"), strings.HasPrefix(hash, "$2y$"):
		_, err := bcrypt.Cost([]byte(hash))
		return err
	case strings.HasPrefix(hash, "$argon2id$"):
		_, err := parseArgon2id(hash)
		return err
	}
	return ErrUnknownHash
}

// VerifyPassword compares password with hash in constant time.
func VerifyPassword(hash, password string) bool {
	if strings.HasPrefix(hash, "$argon2id$") {
		p, err := parseArgon2id(hash)
		if err != nil {
			return false
		}
		got := argon2.IDKey([]byte(password), p.salt, p.time, p.memory, p.threads, uint32(len(p.key)))
		return subtle.ConstantTimeCompare(got, p.key) == 1
	}
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) == nil
}

// MemoryKiB is the memory a check of hash holds while it runs, in KiB:
// argon2id's m parameter; bcrypt's few KiB count as 0.
func MemoryKiB(hash string) int64 {
	if !strings.HasPrefix(hash, "$argon2id$") {
		return 0
	}
	p, err := parseArgon2id(hash)
	if err != nil {
		return 0
	}
	return int64(p.memory)
}

type argonParams struct {
	time, memory uint32
	threads      uint8
	salt, key    []byte
}

// Bounds on stored parameters: a hash file must not be able to make a
// sign-in cost gigabytes or minutes.
const (
	maxArgonMemory = 1 << 20 // KiB = 1 GiB
	maxArgonTime   = 20
)

func parseArgon2id(h string) (*argonParams, error) {
	parts := strings.Split(h, "$")
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, key
	if len(parts) != 6 || parts[1] != "argon2id" {
		return nil, ErrUnknownHash
	}
	var v int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return nil, fmt.Errorf("argon2id: unsupported version %q", parts[2])
	}
	p := &argonParams{}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.memory, &p.time, &p.threads); err != nil {
		return nil, fmt.Errorf("argon2id: bad parameters %q", parts[3])
	}
	if p.memory == 0 || p.memory > maxArgonMemory || p.time == 0 || p.time > maxArgonTime || p.threads == 0 {
		return nil, fmt.Errorf("argon2id: parameters out of range %q", parts[3])
	}
	var err error
	if p.salt, err = base64.RawStdEncoding.DecodeString(parts[4]); err != nil || len(p.salt) < 8 {
		return nil, fmt.Errorf("argon2id: bad salt")
	}
	if p.key, err = base64.RawStdEncoding.DecodeString(parts[5]); err != nil || len(p.key) < 16 {
		return nil, fmt.Errorf("argon2id: bad hash")
	}
	return p, nil
}
