package app

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/crypto/bcrypt"

	"github.com/landlordhq/landlord/tenant"
)

// The browser tests drive the shop in headless Chromium as its users do: a
// merchant signs up and stocks a product, a customer in a second browser
// context (its own cookies) buys it, and the merchant sees the order and
// the lower stock. Once per plan, so once per model. Screenshots of the main
// pages go to ScreenshotDir.

// ScreenshotDir is where the browser tests save their screenshots, relative
// to the repository root; LANDLORD_SCREENSHOTS overrides it.
const ScreenshotDir = "artifacts/screenshots"

func screenshotDir(t *testing.T) string {
	dir := os.Getenv("LANDLORD_SCREENSHOTS")
	if dir == "" {
		dir = filepath.Join("..", "..", ScreenshotDir) // from shop/app
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("screenshots: %v", err)
	}
	return dir
}

// chromium finds the browser; the test command installs it (make deps-test).
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no Chromium on this machine: run `make deps-test` (apt-get install chromium)")
	return ""
}

// serve opens the shop on a fresh control database and serves it on a
// loopback port; it returns the port.
func serve(t *testing.T) (*App, int) {
	t.Helper()
	db := srv.NewDB(t, nil)
	a, err := Open(t.Context(), Config{
		DatabaseURL:  db.AdminURL,
		PasswordCost: bcrypt.MinCost,
		Reserve:      map[tenant.Model]int{tenant.ModelRow: -1, tenant.ModelSchema: -1, tenant.ModelDatabase: -1},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(context.Background()) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	return a, ln.Addr().(*net.TCPAddr).Port
}

func newBrowser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.WindowSize(1280, 900),
		chromedp.UserDataDir(t.TempDir()),
	)
	alloc, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	browser, cancelBrowser := chromedp.NewContext(alloc)
	t.Cleanup(cancelBrowser)
	if err := chromedp.Run(browser); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	return browser
}

// tab opens a tab in a browser context of its own: its own cookies.
func tab(t *testing.T, browser context.Context) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	ctx, cancelT := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(cancelT)
	return ctx
}

func run(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action) {
	t.Helper()
	if err := chromedp.Run(ctx, actions...); err != nil {
		var loc, body string
		_ = chromedp.Run(context.WithoutCancel(ctx), chromedp.Location(&loc), chromedp.Text("body", &body, chromedp.ByQuery))
		t.Fatalf("%s: %v\nat %s\n%s", what, err, loc, trim(body, 800))
	}
}

func shot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	var png []byte
	run(t, ctx, "screenshot "+name, chromedp.FullScreenshot(&png, 90))
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

func trim(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}

func TestBrowserSignUpStockBuy(t *testing.T) {
	_, port := serve(t)
	browser := newBrowser(t)
	dir := screenshotDir(t)
	for _, plan := range []string{"free", "pro", "enterprise"} {
		t.Run(plan, func(t *testing.T) {
			slug := "b-" + plan
			platform := "http://localhost:" + strconv.Itoa(port)
			merchant := tab(t, browser)

			// Sign up.
			run(t, merchant, "sign up",
				chromedp.Navigate(platform+"/"),
				chromedp.WaitVisible("#f-email", chromedp.ByQuery),
			)
			if plan == "free" {
				shot(t, merchant, dir, "platform-landing")
			}
			run(t, merchant, "sign up",
				chromedp.SendKeys("#f-email", "owner@"+slug+".test", chromedp.ByQuery),
				chromedp.SendKeys("#f-password", "a good password", chromedp.ByQuery),
				chromedp.SendKeys("#f-name", "Browser "+plan, chromedp.ByQuery),
				chromedp.SendKeys("#f-slug", slug, chromedp.ByQuery),
				chromedp.SetValue("#f-plan", plan, chromedp.ByQuery),
				chromedp.Submit("#f-email", chromedp.ByQuery),
				chromedp.WaitVisible(`a[href$="/manage/products"]`, chromedp.ByQuery),
			)
			var loc string
			run(t, merchant, "back office", chromedp.Location(&loc))
			base := loc[:strings.Index(loc, "/manage/")]
			shot(t, merchant, dir, plan+"-back-office")

			// A product with stock.
			run(t, merchant, "new product",
				chromedp.Navigate(base+"/manage/products/new"),
				chromedp.WaitVisible("#f-sku", chromedp.ByQuery),
				chromedp.SendKeys("#f-sku", "MUG-1", chromedp.ByQuery),
				chromedp.SendKeys("#f-title", "Blue mug", chromedp.ByQuery),
				chromedp.SendKeys("#f-description", "Holds tea.", chromedp.ByQuery),
				chromedp.SendKeys("#f-price", "12.50", chromedp.ByQuery),
				chromedp.Submit("#f-sku", chromedp.ByQuery),
				chromedp.WaitNotPresent(`form[action$="/manage/products/new"]`, chromedp.ByQuery),
				chromedp.Location(&loc),
			)
			id := regexp.MustCompile(`/manage/products/([0-9a-f-]{36})`).FindStringSubmatch(loc)
			if id == nil {
				t.Fatalf("after creating the product the browser is at %s, want its page", loc)
			}
			run(t, merchant, "receive stock",
				chromedp.Navigate(base+"/manage/products/"+id[1]+"/stock"),
				chromedp.WaitVisible("#f-quantity", chromedp.ByQuery),
				chromedp.SetValue("#f-kind", "receipt", chromedp.ByQuery),
				chromedp.SendKeys("#f-quantity", "5", chromedp.ByQuery),
				chromedp.Submit("#f-quantity", chromedp.ByQuery),
				chromedp.WaitVisible("table", chromedp.ByQuery),
			)
			shot(t, merchant, dir, plan+"-stock")

			// A customer, with cookies of their own, buys one.
			customer := tab(t, browser)
			run(t, customer, "storefront",
				chromedp.Navigate(base+"/"),
				chromedp.WaitVisible(`a[href$="/products/`+id[1]+`"]`, chromedp.ByQuery),
			)
			shot(t, customer, dir, plan+"-storefront")
			run(t, customer, "add to cart",
				chromedp.Click(`a[href$="/products/`+id[1]+`"]`, chromedp.ByQuery),
				chromedp.WaitVisible(`form[action$="/cart"] button`, chromedp.ByQuery),
				chromedp.Click(`form[action$="/cart"] button`, chromedp.ByQuery),
				chromedp.WaitVisible(`a[href$="/checkout"]`, chromedp.ByQuery),
				chromedp.Navigate(base+"/checkout"),
				chromedp.WaitVisible("#f-address", chromedp.ByQuery),
			)
			shot(t, customer, dir, plan+"-checkout")
			var receipt string
			run(t, customer, "check out",
				chromedp.SendKeys("#f-name", "Ada Lovelace", chromedp.ByQuery),
				chromedp.SendKeys("#f-email", "ada@example.com", chromedp.ByQuery),
				chromedp.SendKeys("#f-address", "12 Analytical Row, London", chromedp.ByQuery),
				chromedp.Submit("#f-address", chromedp.ByQuery),
				chromedp.WaitVisible(`//h1[contains(., "Thank you")]`, chromedp.BySearch),
				chromedp.Text("main", &receipt, chromedp.ByQuery),
			)
			shot(t, customer, dir, plan+"-receipt")
			if !strings.Contains(receipt, "Blue mug") {
				t.Errorf("the receipt does not name the product:\n%s", trim(receipt, 500))
			}

			// The merchant sees the order and the lower stock.
			var orders, stock string
			run(t, merchant, "orders",
				chromedp.Navigate(base+"/manage/orders"),
				chromedp.WaitVisible("main", chromedp.ByQuery),
				chromedp.Text("main", &orders, chromedp.ByQuery),
			)
			shot(t, merchant, dir, plan+"-orders")
			if !strings.Contains(orders, "Ada Lovelace") {
				t.Errorf("the orders page does not show the customer's order:\n%s", trim(orders, 500))
			}
			run(t, merchant, "stock after the sale",
				chromedp.Navigate(base+"/manage/products/"+id[1]+"/stock"),
				chromedp.WaitVisible("main", chromedp.ByQuery),
				chromedp.Text("main", &stock, chromedp.ByQuery),
			)
			if !regexp.MustCompile(`\b4\b`).MatchString(stock) || !strings.Contains(strings.ToLower(stock), "sale") {
				t.Errorf("the stock page does not show 4 left and the sale:\n%s", trim(stock, 600))
			}
			fmt.Fprintf(os.Stderr, "browser %s: screenshots in %s\n", plan, dir)
		})
	}
}
