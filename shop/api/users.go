package api

import (
	"net/http"
	"strings"
	"time"

	"github.com/landlordhq/landlord/shop/store"
)

type userJSON struct {
	ID        string    `json:"id"`
	Email     string    `json:"email"`
	Name      string    `json:"name"`
	Role      string    `json:"role"`
	Active    bool      `json:"active"`
	CreatedAt time.Time `json:"created_at"`
}

func userOut(u store.User) userJSON {
	return userJSON{ID: u.ID, Email: u.Email, Name: u.Name, Role: u.Role, Active: u.Active, CreatedAt: u.CreatedAt}
}

type inviteRequest struct {
	Email *string `json:"email"`
	Role  *string `json:"role"`
}

type inviteJSON struct {
	User      userJSON  `json:"user"`
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

type roleRequest struct {
	Role *string `json:"role"`
}

func checkRole(role string) error {
	if role != store.RoleOwner && role != store.RoleStaff {
		return invalid(map[string]string{"role": "must be owner or staff"})
	}
	return nil
}

func (a *api) listUsers(w http.ResponseWriter, r *http.Request, _ *store.User) error {
	us, err := a.store.Users(r.Context())
	if err != nil {
		return err
	}
	items := make([]userJSON, 0, len(us))
	for _, u := range us {
		items = append(items, userOut(u))
	}
	writeJSON(w, http.StatusOK, struct {
		Items []userJSON `json:"items"`
	}{items})
	return nil
}

// inviteUser invites a user and returns the one-time token of the
// invitation link.
func (a *api) inviteUser(w http.ResponseWriter, r *http.Request, u *store.User) error {
	var body inviteRequest
	if err := decode(w, r, &body); err != nil {
		return err
	}
	if err := required(map[string]bool{"email": body.Email != nil, "role": body.Role != nil}); err != nil {
		return err
	}
	if err := checkRole(*body.Role); err != nil {
		return err
	}
	expires := a.now().Add(a.invite)
	inv, err := a.store.InviteUser(r.Context(), *u, strings.TrimSpace(*body.Email), *body.Role, a.invite)
	if err != nil {
		return err
	}
	w.Header().Set("Location", Prefix+"/users/"+inv.User.ID)
	writeJSON(w, http.StatusCreated, inviteJSON{User: userOut(inv.User), Token: inv.Token, ExpiresAt: expires.UTC().Truncate(time.Second)})
	return nil
}

func (a *api) setRole(w http.ResponseWriter, r *http.Request, u *store.User) error {
	id, err := pathID(r, "user")
	if err != nil {
		return err
	}
	var body roleRequest
	if err := decode(w, r, &body); err != nil {
		return err
	}
	if err := required(map[string]bool{"role": body.Role != nil}); err != nil {
		return err
	}
	if err := checkRole(*body.Role); err != nil {
		return err
	}
	out, err := a.store.SetRole(r.Context(), *u, id, *body.Role)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, userOut(out))
	return nil
}

func (a *api) removeUser(w http.ResponseWriter, r *http.Request, u *store.User) error {
	id, err := pathID(r, "user")
	if err != nil {
		return err
	}
	if err := a.store.RemoveUser(r.Context(), *u, id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
