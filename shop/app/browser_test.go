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
	if err := chromedp.Do(browser); err != nil {
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

// run does the steps, and on failure says where the browser was and what
// the page said.
func run(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		loc, _ := chromedp.Run(ctx, chromedp.Location())
		body, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
		t.Fatalf("%s: %v\nat %s\n%s", what, err, loc, trim(body, 800))
	}
}

// read runs one action that returns a value.
func read[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		loc, _ := chromedp.Run(ctx, chromedp.Location())
		t.Fatalf("%s: %v\nat %s", what, err, loc)
	}
	return v
}

func shot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	png := read(t, ctx, "screenshot "+name, chromedp.FullScreenshot(100))
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
	a, port := serve(t)
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
				chromedp.WaitVisible(chromedp.CSS("#f-email")),
			)
			if plan == "free" {
				shot(t, merchant, dir, "platform-landing")
			}
			run(t, merchant, "sign up",
				chromedp.SendKeys(chromedp.CSS("#f-email"), "owner@"+slug+".test"),
				chromedp.SendKeys(chromedp.CSS("#f-password"), "a good password"),
				chromedp.SendKeys(chromedp.CSS("#f-name"), "Browser "+plan),
				chromedp.SendKeys(chromedp.CSS("#f-slug"), slug),
				chromedp.SetValue(chromedp.CSS("#f-plan"), plan),
				chromedp.Submit(chromedp.CSS("#f-email")),
				chromedp.WaitVisible(chromedp.CSS(`a[href$="/manage/products"]`)),
			)
			loc := read(t, merchant, "back office", chromedp.Location())
			base := loc[:strings.Index(loc, "/manage/")]
			shot(t, merchant, dir, plan+"-back-office")

			// A product with stock.
			run(t, merchant, "new product",
				chromedp.Navigate(base+"/manage/products/new"),
				chromedp.WaitVisible(chromedp.CSS("#f-sku")),
				chromedp.SendKeys(chromedp.CSS("#f-sku"), "MUG-1"),
				chromedp.SendKeys(chromedp.CSS("#f-title"), "Blue mug"),
				chromedp.SendKeys(chromedp.CSS("#f-description"), "Holds tea."),
				chromedp.SendKeys(chromedp.CSS("#f-price"), "12.50"),
				chromedp.Submit(chromedp.CSS("#f-sku")),
				chromedp.WaitNotPresent(chromedp.CSS(`form[action$="/manage/products/new"]`)),
			)
			loc = read(t, merchant, "product page", chromedp.Location())
			id := regexp.MustCompile(`/manage/products/([0-9a-f-]{36})`).FindStringSubmatch(loc)
			if id == nil {
				t.Fatalf("after creating the product the browser is at %s, want its page", loc)
			}
			run(t, merchant, "receive stock",
				chromedp.Navigate(base+"/manage/products/"+id[1]+"/stock"),
				chromedp.WaitVisible(chromedp.CSS("#f-quantity")),
				chromedp.SetValue(chromedp.CSS("#f-kind"), "receipt"),
				chromedp.SendKeys(chromedp.CSS("#f-quantity"), "5"),
				chromedp.Submit(chromedp.CSS("#f-quantity")),
				chromedp.WaitVisible(chromedp.CSS("table")),
			)
			shot(t, merchant, dir, plan+"-stock")

			// A customer, with cookies of their own, buys one.
			customer := tab(t, browser)
			run(t, customer, "storefront",
				chromedp.Navigate(base+"/"),
				chromedp.WaitVisible(chromedp.CSS(`a[href$="/products/`+id[1]+`"]`)),
			)
			shot(t, customer, dir, plan+"-storefront")
			run(t, customer, "add to cart",
				chromedp.Click(chromedp.CSS(`a[href$="/products/`+id[1]+`"]`)),
				chromedp.WaitVisible(chromedp.CSS(`form[action$="/cart"] button`)),
				chromedp.Click(chromedp.CSS(`form[action$="/cart"] button`)),
				chromedp.WaitVisible(chromedp.CSS(`a[href$="/checkout"]`)),
				chromedp.Navigate(base+"/checkout"),
				chromedp.WaitVisible(chromedp.CSS("#f-address")),
			)
			shot(t, customer, dir, plan+"-checkout")
			run(t, customer, "check out",
				chromedp.SendKeys(chromedp.CSS("#f-name"), "Ada Lovelace"),
				chromedp.SendKeys(chromedp.CSS("#f-email"), "ada@example.com"),
				chromedp.SendKeys(chromedp.CSS("#f-address"), "12 Analytical Row, London"),
				chromedp.Submit(chromedp.CSS("#f-address")),
				chromedp.WaitVisible(chromedp.Search(`//h1[contains(., "Thank you")]`)),
			)
			receipt := read(t, customer, "receipt", chromedp.Text(chromedp.CSS("main")))
			shot(t, customer, dir, plan+"-receipt")
			if !strings.Contains(receipt, "Blue mug") {
				t.Errorf("the receipt does not name the product:\n%s", trim(receipt, 500))
			}

			// The merchant sees the order and the lower stock.
			run(t, merchant, "orders",
				chromedp.Navigate(base+"/manage/orders"),
				chromedp.WaitVisible(chromedp.CSS("main")),
			)
			orders := read(t, merchant, "orders", chromedp.Text(chromedp.CSS("main")))
			shot(t, merchant, dir, plan+"-orders")
			if !strings.Contains(orders, "Ada Lovelace") {
				t.Errorf("the orders page does not show the customer's order:\n%s", trim(orders, 500))
			}
			run(t, merchant, "stock after the sale",
				chromedp.Navigate(base+"/manage/products/"+id[1]+"/stock"),
				chromedp.WaitVisible(chromedp.CSS("main")),
			)
			stock := read(t, merchant, "stock", chromedp.Text(chromedp.CSS("main")))
			if !regexp.MustCompile(`\b4\b`).MatchString(stock) || !strings.Contains(strings.ToLower(stock), "sale") {
				t.Errorf("the stock page does not show 4 left and the sale:\n%s", trim(stock, 600))
			}
			fmt.Fprintf(os.Stderr, "browser %s: screenshots in %s\n", plan, dir)
		})
	}

	// The operator sees the three stores, one per model, and the report
	// over all of them.
	t.Run("operator", func(t *testing.T) {
		if _, err := a.Platform.CreateOperator(t.Context(), "op@shop.test", "Operator", "operator password"); err != nil {
			t.Fatal(err)
		}
		op := tab(t, browser)
		platform := "http://localhost:" + strconv.Itoa(port)
		run(t, op, "operator sign-in",
			chromedp.Navigate(platform+"/admin/login"),
			chromedp.WaitVisible(chromedp.CSS("#f-email")),
			chromedp.SendKeys(chromedp.CSS("#f-email"), "op@shop.test"),
			chromedp.SendKeys(chromedp.CSS("#f-password"), "operator password"),
			chromedp.Submit(chromedp.CSS("#f-email")),
			chromedp.WaitVisible(chromedp.CSS("table")),
		)
		stores := read(t, op, "stores", chromedp.Text(chromedp.CSS("main")))
		for _, want := range []string{"b-free", "b-pro", "b-enterprise", "row", "schema", "database"} {
			if !strings.Contains(stores, want) {
				t.Errorf("the stores page does not show %q:\n%s", want, trim(stores, 800))
			}
		}
		shot(t, op, dir, "admin-stores")
		run(t, op, "a store's page",
			chromedp.Click(chromedp.CSS(`main a[href^="/admin/stores/"]`)),
			chromedp.WaitVisible(chromedp.CSS(`form[action$="/export"] button`)),
		)
		page := read(t, op, "store page", chromedp.Text(chromedp.CSS("main")))
		if !strings.Contains(page, "Export store data") || !strings.Contains(page, "Reason for exporting") {
			t.Errorf("the store page offers no export:\n%s", trim(page, 800))
		}
		shot(t, op, dir, "admin-store")
		// A plan change moves the store while the page follows the move
		// (it reloads itself each second until the move is over).
		run(t, op, "change a store's plan",
			chromedp.SetValue(chromedp.CSS(`#f-plan`), "pro"),
			chromedp.SendKeys(chromedp.CSS(`#f-plan_reason`), "outgrew its database plan's price"),
			chromedp.Submit(chromedp.CSS(`#f-plan_reason`)),
			chromedp.WaitVisible(chromedp.CSS("main h1")),
		)
		var moved string
		for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
			// The page reloads itself while the move runs: a read that
			// meets a reload is tried again.
			if text, err := chromedp.Run(op, chromedp.Text(chromedp.CSS("main"))); err == nil {
				if moved = text; strings.Contains(moved, "Last moved from") {
					break
				}
			}
		}
		if !strings.Contains(moved, "pro plan · schema") || !strings.Contains(moved, "requests paused") {
			t.Errorf("the store page after the plan change:\n%s", trim(moved, 800))
		}
		shot(t, op, dir, "admin-store-moved")
		run(t, op, "report",
			chromedp.Navigate(platform+"/admin/report"),
			chromedp.WaitVisible(chromedp.CSS(`form[action="/admin/report"] button`)),
			chromedp.Click(chromedp.CSS(`form[action="/admin/report"] button`)),
			chromedp.WaitVisible(chromedp.CSS("main h2")),
		)
		report := read(t, op, "report", chromedp.Text(chromedp.CSS("main")))
		if !strings.Contains(report, "Blue mug") {
			t.Errorf("the report does not list the product sold in every store:\n%s", trim(report, 800))
		}
		shot(t, op, dir, "admin-report")
	})
}
