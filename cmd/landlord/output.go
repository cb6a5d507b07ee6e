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
		p.bar = progressbar.NewOptions(total, barOptions(w, label)...)
	}
	return p
}

// barOptions are the live bar's: counts and the time left. No rate: its
// first readings divide by almost nothing ("107782 targets/s").
func barOptions(w io.Writer, label string) []progressbar.Option {
	return []progressbar.Option{
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(label),
		progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(100 * time.Millisecond),
		progressbar.OptionClearOnFinish(),
	}
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

// logLine says how many of the total are finished, and of those how many
// are done and how many failed, in the words of the report that follows.
func (p *progress) logLine(now time.Time) {
	elapsed := now.Sub(p.start)
	eta := "-"
	if p.done > 0 && p.done < p.total && elapsed > 0 {
		rate := float64(p.done) / elapsed.Seconds()
		eta = time.Duration(float64(p.total-p.done) / rate * float64(time.Second)).Round(time.Second).String()
	}
	fmt.Fprintf(p.w, "%s: %d of %d finished (%d done, %d failed), elapsed %s, eta %s\n",
		p.label, p.done, p.total, p.done-p.failed, p.failed, elapsed.Round(time.Millisecond), eta)
}

// plural is "1 target", "2 targets".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// wrap breaks s into lines of at most width characters at spaces; a word
// longer than width stays whole on its own line.
func wrap(s string, width int) []string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(s) {
		switch {
		case line == "":
			line = w
		case len(line)+1+len(w) <= width:
			line += " " + w
		default:
			lines = append(lines, line)
			line = w
		}
	}
	if line != "" {
		lines = append(lines, line)
	}
	return lines
}

// liveCount shows work whose total may be unknown and whose description
// changes as it goes (an export's table, a move's phase): a live bar on a
// terminal (a spinner without a total), and otherwise a line every few
// seconds, at each new stage, and at the end. It is safe for concurrent
// use.
type liveCount struct {
	mu          sync.Mutex
	w           io.Writer
	label       string
	tty         bool
	bar         *progressbar.ProgressBar
	start, last time.Time
	stage, desc string
	lines       bool // a line was printed
}

func newLiveCount(w io.Writer, label string) *liveCount {
	f, ok := w.(*os.File)
	now := time.Now()
	return &liveCount{w: w, label: label, tty: ok && term.IsTerminal(int(f.Fd())), start: now, last: now}
}

// set shows desc and the count n of total (0: unknown); a new stage
// prints a line at once when not on a terminal.
func (l *liveCount) set(stage, desc string, n, total int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	newStage := stage != l.stage
	l.stage, l.desc = stage, desc
	if l.tty {
		if l.bar == nil {
			if total <= 0 {
				total = -1
			}
			l.bar = progressbar.NewOptions64(total, barOptions(l.w, l.label)...)
		}
		l.bar.Describe(l.label + ": " + desc)
		_ = l.bar.Set64(n)
		return
	}
	if now := time.Now(); newStage || now.Sub(l.last) >= every {
		l.last = now
		l.line(now)
	}
}

func (l *liveCount) line(now time.Time) {
	l.lines = true
	fmt.Fprintf(l.w, "%s: %s, elapsed %s\n", l.label, l.desc, now.Sub(l.start).Round(time.Millisecond))
}

// finish ends the live bar; a run that printed lines gets a last one.
func (l *liveCount) finish() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.bar != nil {
		_ = l.bar.Finish()
		return
	}
	if l.lines {
		l.line(time.Now())
	}
}
