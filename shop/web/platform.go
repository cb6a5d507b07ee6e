package web

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/landlordhq/landlord"
	"github.com/landlordhq/landlord/directory"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/shop/platform"
	"github.com/landlordhq/landlord/shop/store"
	"github.com/landlordhq/landlord/tenant"
)

// OperatorTTL is how long an operator's sign-in lasts.
const OperatorTTL = 8 * time.Hour

func checkPlatform(cfg Config) error {
	if cfg.Platform == nil {
		return errors.New("web config: Platform is required")
	}
	return nil
}

// platformRoutes are the pages of the platform host.
func (s *Server) platformRoutes() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("GET /{$}", s.landing)
	m.HandleFunc("POST /{$}", s.signUp)
	m.HandleFunc("GET /healthz", s.healthz)
	m.Handle("GET /metrics", s.metrics())
	m.Handle("GET /assets/", assets())
	m.HandleFunc("GET /favicon.ico", serveFavicon)
	m.HandleFunc("GET /api/v1/openapi.json", func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.API == nil {
			s.notFound(w, r, nil)
			return
		}
		s.cfg.API.ServeHTTP(w, r)
	})
	m.HandleFunc("GET /admin/login", s.adminLoginPage)
	m.HandleFunc("POST /admin/login", s.adminLoginPost)
	m.HandleFunc("POST /admin/logout", s.adminLogout)
	m.HandleFunc("GET /admin/{$}", s.operator(s.adminStores))
	m.HandleFunc("POST /admin/stores/{id}/state", s.operator(s.adminSetState))
	m.HandleFunc("GET /admin/stores/{id}", s.operator(s.adminBrowseAsk))
	m.HandleFunc("POST /admin/stores/{id}", s.operator(s.adminBrowse))
	m.HandleFunc("POST /admin/stores/{id}/impersonate", s.operator(s.adminImpersonate))
	m.HandleFunc("POST /admin/stores/{id}/export", s.operator(s.adminExport))
	m.HandleFunc("POST /admin/stores/{id}/delete", s.operator(s.adminDelete))
	m.HandleFunc("POST /admin/stores/{id}/restore", s.operator(s.adminRestore))
	m.HandleFunc("POST /admin/stores/{id}/purge", s.operator(s.adminPurge))
	m.HandleFunc("POST /admin/stores/{id}/plan", s.operator(s.adminChangePlan))
	m.HandleFunc("GET /admin/report", s.operator(s.adminReport))
	m.HandleFunc("GET /admin/impersonations", s.operator(s.adminImpersonations))
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { s.notFound(w, r, nil) })
	return m
}

var plans = "free,pro,enterprise"

func (s *Server) landing(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, "landing", &view{Title: "Open your store", Form: url.Values{"plan": {"free"}}})
}

// signUp opens a store, signs its owner in and sends them to its back office.
func (s *Server) signUp(w http.ResponseWriter, r *http.Request) {
	if !s.signupLimit.allow(r) {
		s.fail(w, r, nil, errRateLimited)
		return
	}
	if err := parseForm(w, r); err != nil {
		s.fail(w, r, nil, err)
		return
	}
	f := r.PostForm
	in := platform.SignUp{
		Email:     strings.TrimSpace(f.Get("email")),
		Password:  f.Get("password"),
		StoreName: strings.TrimSpace(f.Get("name")),
		Slug:      strings.TrimSpace(f.Get("slug")),
	}
	shown := url.Values{"email": {in.Email}, "name": {in.StoreName}, "slug": {in.Slug}, "plan": {f.Get("plan")}}
	again := func(status int, errs map[string]string, msg string) {
		s.render(w, r, status, "landing", &view{Title: "Open your store", Form: shown, Errors: errs, Message: msg})
	}
	plan, err := platform.ParsePlan(f.Get("plan"))
	if err != nil {
		again(http.StatusUnprocessableEntity, map[string]string{"plan": "Choose free, pro or enterprise."}, "")
		return
	}
	in.Plan = plan
	rec, owner, err := s.cfg.Platform.SignUp(r.Context(), in)
	if ve := validationErrors(err, nil); ve != nil {
		again(http.StatusUnprocessableEntity, ve, "")
		return
	}
	if err != nil {
		s.fail(w, r, nil, err)
		return
	}
	ctx := landlord.WithTenant(r.Context(), rec.TenantID)
	token, err := s.st.NewSession(ctx, owner.ID, SessionTTL, "", "")
	if err != nil {
		s.fail(w, r, nil, err)
		return
	}
	sc := &storeCtx{Base: "/s/" + rec.Slug}
	s.setCookie(w, sc, sessionCookie, token, int(SessionTTL/time.Second))
	s.flash(w, sc, "Welcome to "+rec.Name+": your store is open. Add your first product.")
	http.Redirect(w, r, sc.Base+"/manage/", http.StatusSeeOther)
}

// operatorCookie's path: only the admin pages see it.
const adminPath = "/admin"

type operatorHandler func(w http.ResponseWriter, r *http.Request, op platform.Operator)

// operator requires a signed-in platform operator.
func (s *Server) operator(h operatorHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		op, ok := s.operatorOf(r)
		if !ok {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/admin/login", http.StatusSeeOther)
				return
			}
			s.errorPage(w, r, nil, http.StatusForbidden, "Sign in as an operator first.")
			return
		}
		if r.Method == http.MethodPost {
			if err := parseForm(w, r); err != nil {
				s.fail(w, r, nil, err)
				return
			}
		}
		h(w, r, op)
	}
}

func (s *Server) operatorOf(r *http.Request) (platform.Operator, bool) {
	c, err := r.Cookie(operatorCookie)
	if err != nil || c.Value == "" || len(c.Value) > 200 {
		return platform.Operator{}, false
	}
	op, err := s.cfg.Platform.OperatorSession(r.Context(), c.Value)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			infoOf(r.Context()).err = err
		}
		return platform.Operator{}, false
	}
	return op, true
}

func (s *Server) setOperatorCookie(w http.ResponseWriter, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: operatorCookie, Value: value, Path: adminPath, MaxAge: maxAge,
		HttpOnly: true, Secure: s.cfg.Secure, SameSite: http.SameSiteLaxMode})
}

func (s *Server) adminView(op platform.Operator, title string) *view {
	name := op.Name
	if name == "" {
		name = op.Email
	}
	return &view{Title: title, Operator: name}
}

func (s *Server) adminLoginPage(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.operatorOf(r); ok {
		http.Redirect(w, r, "/admin/", http.StatusSeeOther)
		return
	}
	s.render(w, r, http.StatusOK, "admin_login", &view{Title: "Operator sign-in"})
}

func (s *Server) adminLoginPost(w http.ResponseWriter, r *http.Request) {
	if !s.loginLimit.allow(r) {
		s.fail(w, r, nil, errRateLimited)
		return
	}
	if err := parseForm(w, r); err != nil {
		s.fail(w, r, nil, err)
		return
	}
	email, password := strings.TrimSpace(r.PostForm.Get("email")), r.PostForm.Get("password")
	shown := url.Values{"email": {email}}
	errs := map[string]string{}
	if email == "" {
		errs["email"] = "Enter your email address."
	}
	if password == "" {
		errs["password"] = "Enter your password."
	}
	if len(errs) > 0 {
		s.render(w, r, http.StatusUnprocessableEntity, "admin_login", &view{Title: "Operator sign-in", Form: shown, Errors: errs})
		return
	}
	op, err := s.cfg.Platform.AuthenticateOperator(r.Context(), email, password)
	if errors.Is(err, store.ErrBadCredentials) {
		s.render(w, r, http.StatusUnauthorized, "admin_login", &view{Title: "Operator sign-in", Form: shown, Message: "Wrong email or password."})
		return
	}
	if err != nil {
		s.fail(w, r, nil, err)
		return
	}
	token, err := s.cfg.Platform.NewOperatorSession(r.Context(), op, OperatorTTL)
	if err != nil {
		s.fail(w, r, nil, err)
		return
	}
	s.setOperatorCookie(w, token, int(OperatorTTL/time.Second))
	http.Redirect(w, r, "/admin/", http.StatusSeeOther)
}

func (s *Server) adminLogout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(operatorCookie); err == nil && c.Value != "" && len(c.Value) <= 200 {
		if err := s.cfg.Platform.EndOperatorSession(r.Context(), c.Value); err != nil && !errors.Is(err, store.ErrNotFound) {
			s.fail(w, r, nil, err)
			return
		}
	}
	s.setOperatorCookie(w, "", -1)
	http.Redirect(w, r, "/admin/login", http.StatusSeeOther)
}

func (s *Server) adminStoresView(w http.ResponseWriter, r *http.Request, op platform.Operator, status int, form url.Values, errs map[string]string, msg string) {
	infos, err := s.cfg.Platform.Stores(r.Context(), op)
	if err != nil {
		s.fail(w, r, nil, err)
		return
	}
	v := s.adminView(op, "Stores")
	v.Form, v.Errors, v.Message, v.Data = form, errs, msg, infos
	s.render(w, r, status, "admin_stores", v)
}

func (s *Server) adminStores(w http.ResponseWriter, r *http.Request, op platform.Operator) {
	s.adminStoresView(w, r, op, http.StatusOK, nil, nil, "")
}

// storeID reads the {id} of an admin path.
func storeID(r *http.Request) (tenant.ID, error) {
	id, err := tenant.ParseID(r.PathValue("id"))
	if err != nil {
		return id, store.ErrNotFound
	}
	return id, nil
}

func (s *Server) adminSetState(w http.ResponseWriter, r *http.Request, op platform.Operator) {
	id, err := storeID(r)
	if err != nil {
		s.fail(w, r, nil, err)
		return
	}
	f := r.PostForm
	var to tenant.State
	switch f.Get("state") {
	case "active":
		to = tenant.StateActive
	case "read_only":
		to = tenant.StateReadOnly
	case "suspended":
		to = tenant.StateSuspended
	default:
		s.fail(w, r, nil, badRequest("Choose active, read_only or suspended."))
		return
	}
	reason := strings.TrimSpace(f.Get("reason"))
	if reason == "" {
		s.adminStoresView(w, r, op, http.StatusUnprocessableEntity, f, map[string]string{"reason-" + id.String(): "Give a reason: it goes into the store's audit log."}, "Give a reason for changing the store's state.")
		return
	}
	t, err := s.cfg.Platform.SetState(r.Context(), op, id, to, reason)
	if err != nil {
		s.fail(w, r, nil, err)
		return
	}
	s.flash(w, nil, "Store "+t.Slug+" is now "+string(t.State)+".")
	http.Redirect(w, r, "/admin/", http.StatusSeeOther)
}

func (s *Server) adminStoreRecord(r *http.Request, op platform.Operator, id tenant.ID) (platform.StoreInfo, error) {
	return s.cfg.Platform.Store(r.Context(), op, id)
}

type browseData struct {
	Info platform.StoreInfo
	// PurgeAfter is when a deleted store's purge is due (Deleted).
	PurgeAfter time.Time
	Deleted    bool
	Reason     string
	Products   store.Page[store.Product]
	Orders     store.Page[store.Order]
	Users      []store.User
	Browsed    bool
	// Move is the store's latest move (nil when it never moved); Moving
	// says it is under way, and the page then refreshes itself.
	Move   *directory.Move
	Moving bool
	// Starting: this process is changing the plan, and the move is not
	// recorded yet.
	Starting bool
}

// adminBrowseAsk asks the reason for looking into a store.
func (s *Server) adminBrowseAsk(w http.ResponseWriter, r *http.Request, op platform.Operator) {
	id, err := storeID(r)
	if err != nil {
		s.fail(w, r, nil, err)
		return
	}
	info, err := s.adminStoreRecord(r, op, id)
	if err != nil {
		s.fail(w, r, nil, err)
		return
	}
	s.renderStore(w, r, op, info, http.StatusOK, nil, nil)
}

// renderStore shows a store's operator page, with what it says of a
// deleted store's purge.
func (s *Server) renderStore(w http.ResponseWriter, r *http.Request, op platform.Operator, info platform.StoreInfo, status int, form url.Values, errs map[string]string) {
	d := browseData{Info: info, Deleted: info.Tenant.State == tenant.StateDeleting}
	if d.Deleted {
		at, ok, err := s.cfg.Platform.PurgeAfter(r.Context(), info.TenantID)
		if err != nil {
			s.fail(w, r, nil, err)
			return
		}
		if ok {
			d.PurgeAfter = at
		}
	}
	// In this order: a plan change this process runs counts as moving
	// until its plan is recorded, after its move is finished.
	busy := s.cfg.Platform.Moving(info.TenantID)
	m, ok, err := s.cfg.Platform.MoveOf(r.Context(), info.TenantID)
	if err != nil {
		s.fail(w, r, nil, err)
		return
	}
	if ok {
		d.Move, d.Moving = &m, !m.Finished()
	}
	if !d.Moving && busy {
		d.Moving, d.Starting = true, true
	}
	if !d.Moving && ok {
		// info may have been read before the move ended: the plan and
		// the model shown are read again, after it.
		rec, t, err := s.cfg.Platform.Placement(r.Context(), info.TenantID)
		if err != nil {
			s.fail(w, r, nil, err)
			return
		}
		d.Info.StoreRecord, d.Info.Tenant = rec, t
	}
	if form == nil {
		form = url.Values{"days": {"30"}, "plan": {string(d.Info.Plan)}}
	}
	v := s.adminView(op, "Store "+info.Slug)
	v.Data, v.Form, v.Errors = d, form, errs
	if d.Moving {
		v.Refresh = 1
	}
	s.render(w, r, status, "admin_store", v)
}

// storeAction reads the store and the reason of an operator's POST about
// it; ok is false when the page has been answered (an unknown store, or
// the form again, saying a reason is needed).
func (s *Server) storeAction(w http.ResponseWriter, r *http.Request, op platform.Operator, field string) (platform.StoreInfo, string, bool) {
	id, err := storeID(r)
	if err != nil {
		s.fail(w, r, nil, err)
		return platform.StoreInfo{}, "", false
	}
	info, err := s.adminStoreRecord(r, op, id)
	if err != nil {
		s.fail(w, r, nil, err)
		return info, "", false
	}
	reason := strings.TrimSpace(r.PostForm.Get(field))
	if reason == "" {
		s.renderStore(w, r, op, info, http.StatusUnprocessableEntity, r.PostForm,
			map[string]string{field: "Give a reason: it goes into the store's audit log."})
		return info, "", false
	}
	return info, reason, true
}

// adminDelete deletes a store: at once when kept for 0 days, else after
// that many days, until which it can be restored.
func (s *Server) adminDelete(w http.ResponseWriter, r *http.Request, op platform.Operator) {
	info, reason, ok := s.storeAction(w, r, op, "delete_reason")
	if !ok {
		return
	}
	days, err := strconv.Atoi(strings.TrimSpace(r.PostForm.Get("days")))
	maxDays := int(platform.MaxDeleteGrace.Hours() / 24)
	if err != nil || days < 0 || days > maxDays {
		s.renderStore(w, r, op, info, http.StatusUnprocessableEntity, r.PostForm,
			map[string]string{"days": "Enter 0 to " + strconv.Itoa(maxDays) + " days."})
		return
	}
	err = s.cfg.Platform.DeleteStore(r.Context(), op, info.TenantID, reason, time.Duration(days)*24*time.Hour)
	if errors.Is(err, provision.ErrPurgeStarted) {
		s.errorPage(w, r, nil, http.StatusConflict, "This store's purge has begun already.")
		return
	}
	if err != nil {
		s.fail(w, r, nil, err)
		return
	}
	if days == 0 {
		s.flash(w, nil, "Store "+info.Slug+" is deleted and purged: nothing of it is left.")
	} else {
		s.flash(w, nil, "Store "+info.Slug+" is deleted: it can be restored for "+strconv.Itoa(days)+" days, then it is purged.")
	}
	http.Redirect(w, r, "/admin/", http.StatusSeeOther)
}

func (s *Server) adminRestore(w http.ResponseWriter, r *http.Request, op platform.Operator) {
	info, reason, ok := s.storeAction(w, r, op, "restore_reason")
	if !ok {
		return
	}
	t, err := s.cfg.Platform.RestoreStore(r.Context(), op, info.TenantID, reason)
	if errors.Is(err, provision.ErrNotDeleted) || errors.Is(err, provision.ErrPurgeStarted) {
		s.errorPage(w, r, nil, http.StatusConflict, "This store cannot be restored: it is not deleted, or its purge has begun.")
		return
	}
	if err != nil {
		s.fail(w, r, nil, err)
		return
	}
	s.flash(w, nil, "Store "+info.Slug+" is restored: it is "+string(t.State)+" again.")
	http.Redirect(w, r, "/admin/", http.StatusSeeOther)
}

func (s *Server) adminPurge(w http.ResponseWriter, r *http.Request, op platform.Operator) {
	info, reason, ok := s.storeAction(w, r, op, "purge_reason")
	if !ok {
		return
	}
	_, err := s.cfg.Platform.PurgeStore(r.Context(), op, info.TenantID, reason)
	if errors.Is(err, platform.ErrNotDeleted) {
		s.errorPage(w, r, nil, http.StatusConflict, "This store is not deleted: delete it first.")
		return
	}
	if err != nil {
		s.fail(w, r, nil, err)
		return
	}
	s.flash(w, nil, "Store "+info.Slug+" is purged: nothing of it is left.")
	http.Redirect(w, r, "/admin/", http.StatusSeeOther)
}

// adminBrowse shows a store's products, orders and users, read-only, for a
// stated reason.
func (s *Server) adminBrowse(w http.ResponseWriter, r *http.Request, op platform.Operator) {
	id, err := storeID(r)
	if err != nil {
		s.fail(w, r, nil, err)
		return
	}
	info, err := s.adminStoreRecord(r, op, id)
	if err != nil {
		s.fail(w, r, nil, err)
		return
	}
	reason := strings.TrimSpace(r.PostForm.Get("reason"))
	v := s.adminView(op, "Store "+info.Slug)
	d := browseData{Info: info, Reason: reason}
	if reason == "" {
		v.Errors = map[string]string{"reason": "Give a reason: it goes into the store's audit log."}
		v.Data = d
		s.render(w, r, http.StatusUnprocessableEntity, "admin_store", v)
		return
	}
	ctx, svc, err := s.cfg.Platform.Browse(r.Context(), op, id, reason)
	if err != nil {
		s.fail(w, r, nil, err)
		return
	}
	if err := browse(ctx, svc, &d); err != nil {
		s.fail(w, r, nil, err)
		return
	}
	d.Browsed = true
	v.Data = d
	v.Form = url.Values{"reason": {reason}, "minutes": {"30"}}
	s.render(w, r, http.StatusOK, "admin_store", v)
}

func browse(ctx context.Context, svc *store.Service, d *browseData) error {
	var err error
	if d.Products, err = svc.Products(ctx, store.ProductFilter{PerPage: 50}); err != nil {
		return err
	}
	if d.Orders, err = svc.Orders(ctx, store.OrderFilter{PerPage: 50}); err != nil {
		return err
	}
	d.Users, err = svc.Users(ctx)
	return err
}

// adminImpersonate signs the operator in as a store user, for support, and
// sends them to the store's back office under /s/<slug>/.
func (s *Server) adminImpersonate(w http.ResponseWriter, r *http.Request, op platform.Operator) {
	id, err := storeID(r)
	if err != nil {
		s.fail(w, r, nil, err)
		return
	}
	info, err := s.adminStoreRecord(r, op, id)
	if err != nil {
		s.fail(w, r, nil, err)
		return
	}
	f := r.PostForm
	reason := strings.TrimSpace(f.Get("reason"))
	minutes, merr := strconv.Atoi(strings.TrimSpace(f.Get("minutes")))
	errs := map[string]string{}
	if reason == "" {
		errs["reason"] = "Give a reason: it goes into the impersonation log."
	}
	if merr != nil || minutes < 1 || minutes > 60 {
		errs["minutes"] = "Enter a duration of 1 to 60 minutes."
	}
	if len(errs) > 0 {
		v := s.adminView(op, "Store "+info.Slug)
		v.Data, v.Errors, v.Form = browseData{Info: info, Reason: reason}, errs, f
		s.render(w, r, http.StatusUnprocessableEntity, "admin_store", v)
		return
	}
	token, err := s.cfg.Platform.Impersonate(r.Context(), op, id, f.Get("user_id"), reason, time.Duration(minutes)*time.Minute)
	if err != nil {
		s.fail(w, r, nil, badID(err))
		return
	}
	sc := &storeCtx{Base: "/s/" + info.Slug}
	s.setCookie(w, sc, sessionCookie, token, minutes*60)
	http.Redirect(w, r, sc.Base+"/manage/", http.StatusSeeOther)
}

// adminExport sends all of a store's data as a Landlord archive file, for
// a stated reason that is recorded before the data is read. Once the first
// bytes have gone out a failure can no longer become an error page: the
// connection is cut instead, so that the browser reports a failed download
// rather than keeping a file that looks whole (an import would refuse it as
// truncated anyway).
func (s *Server) adminExport(w http.ResponseWriter, r *http.Request, op platform.Operator) {
	info, reason, ok := s.storeAction(w, r, op, "export_reason")
	if !ok {
		return
	}
	id := info.TenantID
	name := info.Slug + "-" + s.now().UTC().Format("20060102T150405Z") + ".landlord"
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", `attachment; filename="`+name+`"`)
	h.Set("Cache-Control", "no-store")
	cw := &countingWriter{w: w}
	if _, err := s.cfg.Platform.Export(r.Context(), op, id, reason, cw); err != nil {
		if cw.n == 0 {
			for _, k := range []string{"Content-Type", "Content-Disposition", "Cache-Control"} {
				h.Del(k)
			}
			s.fail(w, r, nil, err)
			return
		}
		infoOf(r.Context()).err = err
		panic(http.ErrAbortHandler)
	}
}

// countingWriter counts what went through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

type reportData struct {
	Report platform.Report
	Ran    bool
}

func (s *Server) adminReport(w http.ResponseWriter, r *http.Request, op platform.Operator) {
	q := r.URL.Query()
	v := s.adminView(op, "Report")
	now := s.now().UTC()
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	v.Form = url.Values{"from": {today.AddDate(0, 0, -30).Format("2006-01-02")}, "to": {today.Format("2006-01-02")}}
	if q.Get("from") == "" && q.Get("to") == "" {
		v.Data = reportData{}
		s.render(w, r, http.StatusOK, "admin_report", v)
		return
	}
	v.Form = url.Values{"from": {q.Get("from")}, "to": {q.Get("to")}}
	errs := map[string]string{}
	from, err := time.Parse("2006-01-02", q.Get("from"))
	if err != nil {
		errs["from"] = "Enter a date like 2026-01-31."
	}
	to, err := time.Parse("2006-01-02", q.Get("to"))
	if err != nil {
		errs["to"] = "Enter a date like 2026-01-31."
	}
	to = to.AddDate(0, 0, 1) // the whole last day
	if len(errs) == 0 && !from.Before(to) {
		errs["to"] = "The end date is before the start date."
	}
	if len(errs) > 0 {
		v.Errors, v.Data = errs, reportData{}
		s.render(w, r, http.StatusBadRequest, "admin_report", v)
		return
	}
	rep, err := s.cfg.Platform.Report(r.Context(), op, from, to, nil)
	if err != nil {
		s.fail(w, r, nil, err)
		return
	}
	v.Data = reportData{Report: rep, Ran: true}
	s.render(w, r, http.StatusOK, "admin_report", v)
}

func (s *Server) adminImpersonations(w http.ResponseWriter, r *http.Request, op platform.Operator) {
	list, err := s.cfg.Platform.Impersonations(r.Context(), 100)
	if err != nil {
		s.fail(w, r, nil, err)
		return
	}
	v := s.adminView(op, "Impersonations")
	v.Data = list
	s.render(w, r, http.StatusOK, "admin_impersonations", v)
}

// adminChangePlan puts a store on another plan: its data moves to the
// plan's isolation model while it keeps selling, and its page follows the
// move.
func (s *Server) adminChangePlan(w http.ResponseWriter, r *http.Request, op platform.Operator) {
	info, reason, ok := s.storeAction(w, r, op, "plan_reason")
	if !ok {
		return
	}
	plan, err := platform.ParsePlan(r.PostForm.Get("plan"))
	if err != nil {
		s.renderStore(w, r, op, info, http.StatusUnprocessableEntity, r.PostForm, map[string]string{"plan": "Choose free, pro or enterprise."})
		return
	}
	err = s.cfg.Platform.ChangePlan(r.Context(), op, info.TenantID, plan, reason)
	switch {
	case errors.Is(err, platform.ErrSamePlan):
		s.renderStore(w, r, op, info, http.StatusUnprocessableEntity, r.PostForm, map[string]string{"plan": "The store is on this plan already."})
		return
	case errors.Is(err, platform.ErrMoving):
		s.errorPage(w, r, nil, http.StatusConflict, "This store is being moved already.")
		return
	case err != nil:
		s.fail(w, r, nil, err)
		return
	}
	s.flash(w, nil, "Store "+info.Slug+" is moving to the "+string(plan)+" plan; it keeps selling meanwhile.")
	http.Redirect(w, r, "/admin/stores/"+info.TenantID.String(), http.StatusSeeOther)
}
