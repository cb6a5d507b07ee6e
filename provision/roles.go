package provision

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/landlordhq/landlord/migration"
	"github.com/landlordhq/landlord/tenant"
)

// Roles names the roles an installation uses and derives their passwords.
//
// The owner role owns every object Landlord creates (schemas, tables,
// databases); it cannot log in, and nothing that runs tenant traffic is a
// member of it (SECURITY.md, I01). The app role runs tenant traffic for the
// row and schema models: no superuser, no BYPASSRLS, NOINHERIT, so the tenant
// roles it is a member of give it nothing until a transaction switches to one
// (SECURITY.md, I02; ARCHITECTURE.md, idea 2). Each schema or database tenant
// has its own role (tenant.ID.RoleName); a database tenant's role is the only
// one, besides the owner, that may connect to its database (SECURITY.md,
// I21).
type Roles struct {
	Owner  string
	App    string
	secret []byte
}

// NewRoles returns Roles whose passwords derive from secret.
func NewRoles(owner, app string, secret []byte) Roles {
	return Roles{Owner: owner, App: app, secret: secret}
}

// Password returns the password of a login role Landlord manages. It is
// derived from the installation secret, so no password is ever stored, and
// every process of the installation can compute it.
func (r Roles) Password(role string) string {
	m := hmac.New(sha256.New, r.secret)
	m.Write([]byte("landlord role password\x00" + role))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// ContextKey is the key that signs tenant contexts (migration.SignContext;
// SECURITY.md, I31). Like the passwords it derives from the installation
// secret, so every process of the installation signs alike.
func (r Roles) ContextKey() []byte {
	m := hmac.New(sha256.New, r.secret)
	m.Write([]byte("landlord tenant context key"))
	return m.Sum(nil)
}

// SignContext returns the signature (the value of
// migration.SignatureSetting) of tenant id's context under role ("none":
// the connection's own login role), valid for migration.ContextLifetime.
// With it, code that holds the installation's secret enters a tenant on a
// connection of its own, as the tenant handle does.
func (r Roles) SignContext(id tenant.ID, role string) string {
	return migration.SignContext(r.ContextKey(), id.String(), role, time.Now().Add(migration.ContextLifetime))
}

// fingerprint identifies the secret without revealing it.
func (r Roles) fingerprint() string {
	m := hmac.New(sha256.New, r.secret)
	m.Write([]byte("landlord secret fingerprint"))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))[:16]
}

// scramVerifier returns the SCRAM-SHA-256 verifier of password in the form
// PostgreSQL stores (RFC 5802, RFC 7677), so that CREATE/ALTER ROLE never
// carries the plain password where a statement log could keep it.
func scramVerifier(password string) (string, error) {
	const iterations = 4096
	salt := make([]byte, 16)
	rand.Read(salt)
	salted, err := pbkdf2.Key(sha256.New, password, salt, iterations, sha256.Size)
	if err != nil {
		return "", fmt.Errorf("scram verifier: %w", err)
	}
	hm := func(key []byte, msg string) []byte {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(msg))
		return m.Sum(nil)
	}
	clientKey := hm(salted, "Client Key")
	storedKey := sha256.Sum256(clientKey)
	serverKey := hm(salted, "Server Key")
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", iterations, b64(salt), b64(storedKey[:]), b64(serverKey)), nil
}

// PasswordMatches reports whether stored, a role's password as pg_authid
// holds it (a SCRAM-SHA-256 verifier, or an MD5 hash for the older
// setting), verifies password. SQL that runs as a role may change that
// role's password (SECURITY.md, I33); comparing what is stored with the
// password Landlord derives is how that change is seen. A NULL password
// ("") or a format it does not know verifies nothing.
func PasswordMatches(stored, role, password string) bool {
	switch {
	case strings.HasPrefix(stored, "SCRAM-SHA-256$"):
		return scramMatches(stored, password)
	case strings.HasPrefix(stored, "md5") && len(stored) == 35:
		sum := md5.Sum([]byte(password + role))
		return subtle.ConstantTimeCompare([]byte(stored[3:]), []byte(hex.EncodeToString(sum[:]))) == 1
	}
	return false
}

// scramMatches recomputes the stored and server keys of password from the
// verifier's salt and iteration count (RFC 5802) and compares them.
func scramMatches(verifier, password string) bool {
	// SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>
	parts := strings.Split(strings.TrimPrefix(verifier, "SCRAM-SHA-256$"), "$")
	if len(parts) != 2 {
		return false
	}
	iterSalt, keys := strings.SplitN(parts[0], ":", 2), strings.SplitN(parts[1], ":", 2)
	if len(iterSalt) != 2 || len(keys) != 2 {
		return false
	}
	iterations, err := strconv.Atoi(iterSalt[0])
	if err != nil || iterations <= 0 {
		return false
	}
	salt, err1 := base64.StdEncoding.DecodeString(iterSalt[1])
	storedKey, err2 := base64.StdEncoding.DecodeString(keys[0])
	serverKey, err3 := base64.StdEncoding.DecodeString(keys[1])
	if err1 != nil || err2 != nil || err3 != nil {
		return false
	}
	salted, err := pbkdf2.Key(sha256.New, password, salt, iterations, sha256.Size)
	if err != nil {
		return false
	}
	clientKey := hmacSHA256(salted, "Client Key")
	wantStored := sha256.Sum256(clientKey)
	return hmac.Equal(wantStored[:], storedKey) && hmac.Equal(hmacSHA256(salted, "Server Key"), serverKey)
}

func hmacSHA256(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}
