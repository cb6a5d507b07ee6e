package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// output writes a command's results: aligned tables for people, or JSON for
// scripts (--json), always to the command's stdout. Diagnostics and progress
// go to stderr, so that JSON output stays parseable.
type output struct {
	json bool
	w    io.Writer
}

func newOutput(cmd *cobra.Command, asJSON bool) *output {
	return &output{json: asJSON, w: cmd.OutOrStdout()}
}

// addJSONFlag adds the --json flag to cmd and returns where it lands.
func addJSONFlag(cmd *cobra.Command) *bool {
	return cmd.Flags().Bool("json", false, "print JSON instead of a table (one object, or one object per line for lists)")
}

// table prints rows under headers, or, in JSON mode, v (which should carry
// the same information with stable field names).
func (o *output) table(headers []string, rows [][]string, v any) error {
	if o.json {
		return o.emit(v)
	}
	tw := tabwriter.NewWriter(o.w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(headers, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// lines prints each element of vs as one JSON line in JSON mode, and rows as
// a table otherwise.
func (o *output) lines(headers []string, rows [][]string, vs []any) error {
	if !o.json {
		return o.table(headers, rows, nil)
	}
	for _, v := range vs {
		if err := o.emit(v); err != nil {
			return err
		}
	}
	return nil
}

// emit writes v as one line of JSON.
func (o *output) emit(v any) error {
	// URLs print as they are: "&", not "\u0026".
	enc := json.NewEncoder(o.w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// printf writes human text; it prints nothing in JSON mode.
func (o *output) printf(format string, args ...any) {
	if !o.json {
		fmt.Fprintf(o.w, format, args...)
	}
}

// progress reports a long operation: a live bar with counts, rate and ETA on
// a terminal, and plain log lines (at most one every few seconds, and at the
// end) otherwise. It is safe for concurrent use.
type progress struct {
	mu     sync.Mutex
	bar    *progressbar.ProgressBar // nil when not on a terminal
	w      io.Writer
	label  string
	total  int
	done   int
	failed int
	start  time.Time
	last   time.Time
}

// every is how often a non-terminal progress writes a line.
const every = 5 * time.Second

func newProgress(w io.Writer, label string, total int) *progress {
	p := &progress{w: w, label: label, total: total, start: time.Now()}
	p.last = p.start
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.bar = progressbar.NewOptions(total,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(label),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("targets"),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)
	}
	return p
}

// step records one finished unit of work, failed or not.
func (p *progress) step(failed bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done++
	if failed {
		p.failed++
	}
	if p.bar != nil {
		_ = p.bar.Add(1)
		return
	}
	if now := time.Now(); now.Sub(p.last) >= every {
		p.last = now
		p.logLine(now)
	}
}

// finish ends the display with a summary line.
func (p *progress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		_ = p.bar.Finish()
	}
	p.logLine(time.Now())
}

func (p *progress) logLine(now time.Time) {
	elapsed := now.Sub(p.start)
	rate := float64(p.done) / max(elapsed.Seconds(), 1e-9)
	eta := "-"
	if p.done > 0 && p.done < p.total {
		eta = time.Duration(float64(p.total-p.done) / rate * float64(time.Second)).Round(time.Second).String()
	}
	fmt.Fprintf(p.w, "%s: %d/%d done, %d failed, %.1f/s, elapsed %s, eta %s\n",
		p.label, p.done, p.total, p.failed, rate, elapsed.Round(time.Millisecond), eta)
}
