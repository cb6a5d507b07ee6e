package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/landlordhq/landlord/pgtest"
)

var srv *pgtest.Server

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &srv)) }

func TestBadFlagsAreUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--addr", "no-port"},
		{"--database-url", "postgres://%zz"},
		{"--nosuch"},
		{"extra"},
	} {
		err := run(t.Context(), args, io.Discard, io.Discard)
		if !errors.As(err, new(usageError)) {
			t.Errorf("run %q = %v, want a usage error", args, err)
		}
	}
	if err := run(t.Context(), []string{"-h"}, io.Discard, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("run -h = %v, want flag.ErrHelp", err)
	}
}

func TestTakenPortFailsBeforeAnythingStarts(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	err = run(t.Context(), []string{"--addr", ln.Addr().String(), "--database-url", "postgres://localhost:1/none"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "listen on") {
		t.Fatalf("run on a taken port = %v, want a listen error", err)
	}
}

// syncBuffer is a bytes.Buffer safe for the writer and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestServesSeedsAndStops runs the command as a user would: it seeds the
// demo, prints one URL per line for every store and the platform, serves
// them, stops on cancellation, and a second run reuses the data.
func TestServesSeedsAndStops(t *testing.T) {
	db := srv.NewDB(t, nil)
	for runNo := 1; runNo <= 2; runNo++ {
		ctx, cancel := context.WithCancel(t.Context())
		var out, errOut syncBuffer
		done := make(chan error, 1)
		go func() {
			done <- run(ctx, []string{"--addr", "127.0.0.1:0", "--database-url", db.AdminURL}, &out, &errOut)
		}()
		deadline := time.Now().Add(2 * time.Minute)
		for !strings.Contains(out.String(), "Demo logins") {
			select {
			case err := <-done:
				cancel()
				t.Fatalf("run %d ended early: %v\nstdout:\n%s\nstderr:\n%s", runNo, err, out.String(), errOut.String())
			case <-time.After(50 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				cancel()
				t.Fatalf("run %d printed no URLs in 2 minutes\nstderr:\n%s", runNo, errOut.String())
			}
		}
		urls := regexp.MustCompile(`http://[^\s]+`).FindAllString(out.String(), -1)
		if len(urls) < 3+3*3 {
			t.Fatalf("run %d printed %d URLs, want the platform's 3 and 3 per demo store:\n%s", runNo, len(urls), out.String())
		}
		port := regexp.MustCompile(`:(\d+)/`).FindStringSubmatch(urls[0])[1]
		for _, path := range []string{"/healthz", "/s/corner-shop/", "/s/book-store/", "/s/big-market/"} {
			resp, err := http.Get("http://127.0.0.1:" + port + path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("run %d: GET %s = %s\n%s", runNo, path, resp.Status, firstLines(string(body), 5))
			}
		}
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("run %d: stop: %v", runNo, err)
			}
		case <-time.After(time.Minute):
			t.Fatalf("run %d did not stop within a minute of cancellation", runNo)
		}
	}
}

func firstLines(s string, n int) string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() && len(out) < n {
		out = append(out, sc.Text())
	}
	return strings.Join(out, "\n")
}
