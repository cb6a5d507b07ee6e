package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/schollz/progressbar/v3"
)

func TestPlural(t *testing.T) {
	t.Parallel()
	for n, want := range map[int]string{0: "0 targets", 1: "1 target", 2: "2 targets"} {
		if got := plural(n, "target"); got != want {
			t.Errorf("plural(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestWrap(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("word ", 40) + strings.Repeat("x", 90)
	lines := wrap(long, 76)
	if strings.Join(lines, " ") != strings.Join(strings.Fields(long), " ") {
		t.Fatalf("wrap lost or changed words: %q", lines)
	}
	for _, l := range lines[:len(lines)-1] {
		if len(l) > 76 {
			t.Errorf("line of %d characters: %q", len(l), l)
		}
	}
}

// TestProgressLine: a run whose targets all failed says so in the words
// of the report that follows ("0 done, 8 failed"), not "8/9 done".
func TestProgressLine(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	p := newProgress(&buf, "migrating", 9)
	for range 8 {
		p.step(true)
	}
	p.finish()
	if !strings.Contains(buf.String(), "migrating: 8 of 9 finished (0 done, 8 failed)") {
		t.Fatalf("progress line %q", buf.String())
	}
}

// TestBarShowsNoRate: the live bar's first readings show no rate, which
// divides by almost no time ("107782 targets/s").
func TestBarShowsNoRate(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	bar := progressbar.NewOptions(1000, append(barOptions(&buf, "migrating"), progressbar.OptionThrottle(0))...)
	_ = bar.Add(1)
	if out := buf.String(); !strings.Contains(out, "1/1000") || strings.Contains(out, "/s") {
		t.Fatalf("bar after one step: %q", out)
	}
}
