// Command shop runs the multi-store shop platform: merchants sign up and
// run their own stores, each isolated from every other on the tier that
// fits it (free: shared tables, pro: own schema, enterprise: own database).
//
// With no database URL it starts a private PostgreSQL (the embedded default
// of the landlord command, database "shop"), seeds demo stores on the first
// run and prints their URLs and logins. Ctrl-C stops it cleanly; the next
// run reuses the data.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/embedded"
	"github.com/landlordhq/landlord/shop/app"
)

// controlDatabase is the shop's control database on the embedded server;
// the landlord command's own ("landlord") holds other installations.
const controlDatabase = "shop"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	interrupted := ctx.Err() != nil
	stop()
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
	case interrupted:
		// Ctrl-C before the shop was serving: whatever was under way
		// stopped where it was; the next run finishes it.
		fmt.Fprintln(os.Stderr, "shop: interrupted:", err)
		os.Exit(130)
	case errors.As(err, new(usageError)):
		fmt.Fprintln(os.Stderr, "shop:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "shop:", err)
		os.Exit(1)
	}
}

// usageError is bad command-line input (exit 2).
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

type options struct {
	addr        string
	databaseURL string
	baseDomain  string
	demo        bool
	verbose     bool
}

func parse(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("shop", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.addr, "addr", "127.0.0.1:8080", "host:port to serve on")
	fs.StringVar(&o.databaseURL, "database-url", os.Getenv("LANDLORD_DATABASE_URL"),
		"administrator URL of the shop's control database (default $LANDLORD_DATABASE_URL, else a private embedded PostgreSQL)")
	fs.StringVar(&o.baseDomain, "base-domain", "localhost", "stores are served at <slug>.<base-domain>")
	fs.BoolVar(&o.demo, "demo", true, "seed the demo stores, products, orders and logins where they are missing")
	fs.BoolVar(&o.verbose, "v", false, "log debug detail")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: shop [flags]\n\nServes the shop platform. Flags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, err
		}
		return o, usageError{err}
	}
	if fs.NArg() > 0 {
		return o, usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	if _, _, err := net.SplitHostPort(o.addr); err != nil {
		return o, usageError{fmt.Errorf("--addr %q: %w", o.addr, err)}
	}
	if o.databaseURL != "" {
		if _, err := pgx.ParseConfig(o.databaseURL); err != nil {
			return o, usageError{fmt.Errorf("--database-url: %w", err)}
		}
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parse(args, stderr)
	if err != nil {
		return err
	}
	level := slog.LevelInfo
	if o.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	// The port first: a taken port is reported before anything starts.
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", o.addr, err)
	}
	defer ln.Close()

	url := o.databaseURL
	if url == "" {
		fmt.Fprintln(stderr, "starting the private PostgreSQL (the first start takes a few seconds)")
		srv, err := embedded.StartDefault(ctx, log)
		if err != nil {
			return err
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := srv.Stop(sctx); err != nil {
				fmt.Fprintln(stderr, "shop: stop PostgreSQL:", err)
			}
		}()
		if err := srv.EnsureDatabase(ctx, controlDatabase); err != nil {
			return err
		}
		url = srv.URL(controlDatabase)
	}

	a, err := app.Open(ctx, app.Config{DatabaseURL: url, BaseDomain: o.baseDomain, Logger: log})
	if err != nil {
		return err
	}
	defer a.Close(context.Background())
	if o.demo {
		fmt.Fprintln(stderr, "seeding the demo stores where they are missing")
		if err := a.SeedDemo(ctx); err != nil {
			return fmt.Errorf("seed the demo: %w", err)
		}
	}

	hs := &http.Server{
		Handler:           a.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	printURLs(stdout, o, ln.Addr().(*net.TCPAddr).Port)

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	fmt.Fprintln(stderr, "stopping")
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("stop serving: %w", err)
	}
	return nil
}

// printURLs prints where everything is, one http:// URL per line, and the
// demo logins.
func printURLs(w io.Writer, o options, port int) {
	host := func(sub string) string {
		h := o.baseDomain
		if sub != "" {
			h = sub + "." + h
		}
		return "http://" + net.JoinHostPort(h, strconv.Itoa(port)) + "/"
	}
	fmt.Fprintf(w, "The shop is serving on %s (Ctrl-C stops it).\n\n", o.addr)
	fmt.Fprintf(w, "Sign up a store:  %s\n", host(""))
	fmt.Fprintf(w, "Platform admin:   %sadmin/\n", host(""))
	fmt.Fprintf(w, "JSON API:         %sapi/v1/openapi.json\n", host(""))
	if !o.demo {
		return
	}
	fmt.Fprintln(w)
	for _, d := range app.DemoStores {
		fmt.Fprintf(w, "%s (%s plan, %s model)\n", d.Name, d.Plan, d.Plan.Model())
		fmt.Fprintf(w, "  storefront:   %s\n", host(d.Slug))
		fmt.Fprintf(w, "  back office:  %smanage/\n", host(d.Slug))
		fmt.Fprintf(w, "  API:          %sapi/v1/catalog\n", host(d.Slug))
	}
	fmt.Fprintf(w, "\nDemo logins (password %q for each):\n", app.DemoPassword)
	fmt.Fprintf(w, "  platform operator  %s\n", app.DemoOperator)
	for _, d := range app.DemoStores {
		fmt.Fprintf(w, "  %-17s  %s\n", d.Slug+" owner", d.Owner)
	}
	fmt.Fprintln(w, "\nEvery store is also served under a path, for example "+host("")+"s/"+app.DemoStores[0].Slug+"/")
	fmt.Fprintln(w, "The API's staff routes take a bearer token: POST api/v1/auth/tokens with a login's email, password and a name.")
}
