package platform

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/landlordhq/landlord"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/shop/store"
	"github.com/landlordhq/landlord/tenant"
)

// Password limits in bytes; bcrypt reads no more than 72.
const (
	MinPasswordLen = 8
	MaxPasswordLen = 72
)

// SignUp is a new store and its owner.
type SignUp struct {
	Email     string // the owner's, also their sign-in
	Password  string // the owner's, 8 to 72 bytes
	StoreName string // 1 to 200 characters
	Slug      string // the store's address: <slug>.<domain> and /s/<slug>/
	Plan      Plan
}

// StoreRecord is the platform's row of a store.
type StoreRecord struct {
	TenantID   tenant.ID
	Slug, Name string
	Plan       Plan
	OwnerEmail string
	CreatedAt  time.Time
}

// SignUp opens a store: it validates every field first (a
// *store.ValidationError naming each bad one among email, password, name,
// slug and plan; a slug that is reserved or belongs to another tenant is
// {"slug": "is taken"}), creates the tenant in the plan's model (claiming a
// pre-provisioned one when the reserve has one), creates the owner with the
// store service, and records the store. When any step after the tenant
// exists fails, the tenant is deleted again: a failed sign-up leaves no
// tenant, no owner and no store row.
func (p *Platform) SignUp(ctx context.Context, in SignUp) (StoreRecord, store.User, error) {
	email, slug, name, plan, err := p.validateSignUp(ctx, in)
	if err != nil {
		return StoreRecord{}, store.User{}, err
	}
	t, err := p.ll.CreateTenant(ctx, provision.Request{Slug: slug, Model: plan.Model(), DisplayName: name})
	if errors.Is(err, tenant.ErrSlugTaken) {
		// Another sign-up took the slug since it was checked.
		return StoreRecord{}, store.User{}, &store.ValidationError{Fields: map[string]string{"slug": "is taken"}}
	}
	if err != nil {
		return StoreRecord{}, store.User{}, fmt.Errorf("sign up %s: create tenant: %w", slug, err)
	}
	rec, owner, err := p.finishSignUp(ctx, t, email, name, in.Password, plan)
	if err != nil {
		// The tenant goes, whatever ctx says: a cancelled sign-up must not
		// leave a store behind.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if derr := p.ll.DeleteTenant(cctx, t.ID); derr != nil {
			p.log.LogAttrs(ctx, slog.LevelError, "failed sign-up: tenant left behind",
				slog.String("tenant", t.ID.String()), slog.String("slug", slug), slog.Any("err", derr))
			err = errors.Join(err, fmt.Errorf("delete tenant %s of the failed sign-up: %w", t.ID, derr))
		}
		return StoreRecord{}, store.User{}, err
	}
	p.log.LogAttrs(ctx, slog.LevelInfo, "store signed up", slog.String("tenant", t.ID.String()),
		slog.String("slug", slug), slog.String("plan", string(plan)))
	return rec, owner, nil
}

// finishSignUp creates the owner of tenant t and the store row.
func (p *Platform) finishSignUp(ctx context.Context, t tenant.Tenant, email, name, password string, plan Plan) (StoreRecord, store.User, error) {
	local, _, _ := strings.Cut(email, "@")
	owner, err := p.st.CreateOwner(landlord.WithTenant(ctx, t.ID), email, local, password)
	if err != nil {
		return StoreRecord{}, store.User{}, fmt.Errorf("sign up %s: create owner: %w", t.Slug, err)
	}
	rec := StoreRecord{TenantID: t.ID, Slug: t.Slug, Name: name, Plan: plan, OwnerEmail: email}
	err = p.db.QueryRow(ctx, `INSERT INTO shop.stores (tenant_id, slug, name, plan, owner_email)
		VALUES ($1, $2, $3, $4, $5) RETURNING created_at`, t.ID, t.Slug, name, string(plan), email).Scan(&rec.CreatedAt)
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23505" {
			return StoreRecord{}, store.User{}, &store.ValidationError{Fields: map[string]string{"slug": "is taken"}}
		}
		return StoreRecord{}, store.User{}, fmt.Errorf("sign up %s: record store: %w", t.Slug, err)
	}
	return rec, owner, nil
}

// validateSignUp checks every field of in and returns them normalized, or a
// *store.ValidationError naming every bad field.
func (p *Platform) validateSignUp(ctx context.Context, in SignUp) (email, slug, name string, plan Plan, err error) {
	bad := map[string]string{}
	email, msg := checkEmail(in.Email)
	if msg != "" {
		bad["email"] = msg
	}
	if msg := checkPassword(in.Password); msg != "" {
		bad["password"] = msg
	}
	name, msg = checkName(in.StoreName)
	if msg != "" {
		bad["name"] = msg
	}
	plan, perr := ParsePlan(string(in.Plan))
	if perr != nil {
		bad["plan"] = "choose free, pro or enterprise"
	}
	slug, msg = checkSlug(in.Slug)
	if msg != "" {
		bad["slug"] = msg
	} else {
		taken, err := p.slugTaken(ctx, slug)
		if err != nil {
			return "", "", "", "", err
		}
		if taken {
			bad["slug"] = "is taken"
		}
	}
	if len(bad) > 0 {
		return "", "", "", "", &store.ValidationError{Fields: bad}
	}
	return email, slug, name, plan, nil
}

// slugTaken reports whether a tenant or a store has slug.
func (p *Platform) slugTaken(ctx context.Context, slug string) (bool, error) {
	_, err := p.ll.TenantBySlug(ctx, slug)
	switch {
	case err == nil:
		return true, nil
	case !errors.Is(err, tenant.ErrNotFound):
		return false, fmt.Errorf("check slug %s: %w", slug, err)
	}
	var taken bool
	if err := p.db.QueryRow(ctx, `SELECT EXISTS (SELECT FROM shop.stores WHERE slug = $1)`, slug).Scan(&taken); err != nil {
		return false, fmt.Errorf("check slug %s: %w", slug, err)
	}
	return taken, nil
}

// StoreBySlug returns the store with slug; store.ErrNotFound if none.
func (p *Platform) StoreBySlug(ctx context.Context, slug string) (StoreRecord, error) {
	norm, err := tenant.NormalizeSlug(slug)
	if err != nil {
		return StoreRecord{}, fmt.Errorf("store %q: %w", clip(slug), store.ErrNotFound)
	}
	rec, err := scanStore(p.db.QueryRow(ctx, `SELECT `+storeColumns+` FROM shop.stores WHERE slug = $1`, norm))
	if errors.Is(err, pgx.ErrNoRows) {
		return StoreRecord{}, fmt.Errorf("store %s: %w", norm, store.ErrNotFound)
	}
	if err != nil {
		return StoreRecord{}, fmt.Errorf("store %s: %w", norm, err)
	}
	return rec, nil
}

const storeColumns = `tenant_id, slug, name, plan, owner_email, created_at`

func scanStore(r pgx.Row) (StoreRecord, error) {
	var s StoreRecord
	var plan string
	err := r.Scan(&s.TenantID, &s.Slug, &s.Name, &plan, &s.OwnerEmail, &s.CreatedAt)
	s.Plan = Plan(plan)
	return s, err
}

// checkEmail returns the email trimmed and in lower case, or what is wrong.
func checkEmail(s string) (string, string) {
	s = strings.ToLower(strings.TrimSpace(s))
	switch {
	case s == "":
		return "", "is required"
	case len(s) > 254:
		return "", "is longer than 254 characters"
	}
	a, err := mail.ParseAddress(s)
	local, domain, _ := strings.Cut(s, "@")
	if err != nil || a.Address != s || a.Name != "" || local == "" || !strings.Contains(domain, ".") ||
		strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") || strings.ContainsAny(s, " \t\r\n<>\"") {
		return "", "is not an email address"
	}
	return s, ""
}

// checkPassword returns what is wrong with a password, "" if nothing.
func checkPassword(s string) string {
	switch {
	case len(s) < MinPasswordLen:
		return fmt.Sprintf("must be at least %d characters", MinPasswordLen)
	case len(s) > MaxPasswordLen:
		return fmt.Sprintf("must be at most %d bytes", MaxPasswordLen)
	}
	return ""
}

// checkName returns a display name trimmed, or what is wrong with it.
func checkName(s string) (string, string) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return "", "is required"
	case !utf8.ValidString(s):
		return "", "is not valid text"
	case utf8.RuneCountInString(s) > 200:
		return "", "is longer than 200 characters"
	case strings.ContainsFunc(s, unicode.IsControl):
		return "", "must not contain control characters"
	}
	return s, ""
}

// checkSlug returns the slug normalized, or what is wrong with it: the rule
// tenant.NormalizeSlug names, or "is taken" for a reserved name.
func checkSlug(s string) (string, string) {
	if strings.TrimSpace(s) == "" {
		return "", "is required"
	}
	norm, err := tenant.NormalizeSlug(s)
	if err == nil {
		return norm, ""
	}
	// NormalizeSlug's message is `slug "<input>": invalid slug: <rule>`;
	// the rule is what the form shows.
	msg := err.Error()
	if i := strings.LastIndex(msg, tenant.ErrBadSlug.Error()+": "); i >= 0 {
		msg = msg[i+len(tenant.ErrBadSlug.Error())+2:]
	}
	if strings.HasPrefix(msg, "reserved name") || strings.Contains(msg, " is reserved") {
		return "", "is taken"
	}
	return "", msg
}
