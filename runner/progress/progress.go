// Package progress shows how far long work has got: a bar with count, rate
// and ETA on a terminal, periodic structured log lines otherwise (a service
// at boot).
package progress

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

// Reporter starts tasks.
type Reporter interface {
	// Start begins a task of total units; total <= 0 when unknown.
	Start(name string, total int64) Task
}

// Task is one piece of long work.
type Task interface {
	// Add records n more units done.
	Add(n int64)
	// Done ends the task.
	Done()
}

// Discard reports nothing.
type Discard struct{}

// Start returns a task that reports nothing.
func (Discard) Start(string, int64) Task { return discardTask{} }

type discardTask struct{}

func (discardTask) Add(int64) {}
func (discardTask) Done()     {}

// clock is replaced in tests.
type clock func() time.Time

// meter counts a task's units. Its rate runs from the task's first units,
// not from its start: a pass often waits for the server before the first
// document comes (a sorted read on an engine that sorts in memory), and a
// rate that counted that wait would promise an ETA of hours.
type meter struct {
	total     int64
	done      int64
	start     time.Time
	first     time.Time // when the first units came
	firstDone int64
}

func (m *meter) add(n int64, now time.Time) {
	if m.done == 0 && n > 0 {
		m.first, m.firstDone = now, n
	}
	m.done += n
}

// rate is units a second since the first units; false until a second of
// them.
func (m *meter) rate(now time.Time) (float64, bool) {
	if m.first.IsZero() {
		return 0, false
	}
	s := now.Sub(m.first).Seconds()
	if s < 1 || m.done <= m.firstDone {
		return 0, false
	}
	return float64(m.done-m.firstDone) / s, true
}

// eta is the time left at the rate, if there is one to tell.
func (m *meter) eta(now time.Time) (time.Duration, bool) {
	rate, ok := m.rate(now)
	if !ok || m.total <= 0 || m.done >= m.total {
		return 0, false
	}
	return remaining(m.total-m.done, rate), true
}

// beat calls fn every period until stop is closed: a task that waits (for
// the server, before its first units) still says it is alive.
func beat(period time.Duration, stop <-chan struct{}, fn func()) {
	if period <= 0 {
		return
	}
	go func() {
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				fn()
			}
		}
	}()
}

// Bar draws one line per task on a terminal, redrawn at most every 200 ms
// and at least every second. Lines written through Writer go above the
// bar, not onto it.
type Bar struct {
	W   io.Writer
	now clock

	mu sync.Mutex
	// line is the bar drawn now, "" when none.
	line string
}

// NewBar draws on w.
func NewBar(w io.Writer) *Bar { return &Bar{W: w, now: time.Now} }

// Writer is w with the bar kept out of the way: each write clears the
// bar's line first and draws it again after (give it to the logger that
// writes to the bar's terminal).
func (b *Bar) Writer() io.Writer { return barWriter{b} }

type barWriter struct{ b *Bar }

func (w barWriter) Write(p []byte) (int, error) {
	w.b.mu.Lock()
	defer w.b.mu.Unlock()
	if w.b.line != "" {
		fmt.Fprint(w.b.W, "\r\033[K")
	}
	n, err := w.b.W.Write(p)
	if w.b.line != "" {
		fmt.Fprint(w.b.W, w.b.line)
	}
	return n, err
}

// draw shows line as the bar; end keeps it, on a line of its own.
func (b *Bar) draw(line string, end bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	fmt.Fprintf(b.W, "\r\033[K%s", line)
	b.line = line
	if end {
		fmt.Fprintln(b.W)
		b.line = ""
	}
}

// Start begins drawing a task.
func (b *Bar) Start(name string, total int64) Task {
	t := &barTask{b: b, name: name, m: meter{total: total, start: b.now()}, stop: make(chan struct{})}
	beat(time.Second, t.stop, func() { t.redraw(false) })
	return t
}

type barTask struct {
	mu    sync.Mutex
	b     *Bar
	name  string
	m     meter
	drawn time.Time
	stop  chan struct{}
	ended bool
}

func (t *barTask) Add(n int64) {
	t.mu.Lock()
	now := t.b.now()
	t.m.add(n, now)
	t.mu.Unlock()
	t.redraw(false)
}

// redraw draws the bar, at most every 200 ms.
func (t *barTask) redraw(force bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ended {
		return
	}
	now := t.b.now()
	if !force && now.Sub(t.drawn) < 200*time.Millisecond {
		return
	}
	t.drawn = now
	t.b.draw(t.line(now), false)
}

func (t *barTask) line(now time.Time) string {
	rate, _ := t.m.rate(now)
	eta, hasETA := t.m.eta(now)
	return line(t.name, t.m.done, t.m.total, now.Sub(t.m.start), rate, eta, hasETA)
}

func (t *barTask) Done() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ended {
		return
	}
	t.ended = true
	close(t.stop)
	now := t.b.now()
	t.b.draw(line(t.name, t.m.done, t.m.total, now.Sub(t.m.start), overall(t.m.done, now.Sub(t.m.start)), 0, false), true)
}

// overall is the rate over the whole task, for its last line.
func overall(done int64, elapsed time.Duration) float64 {
	if s := elapsed.Seconds(); s > 0 {
		return float64(done) / s
	}
	return 0
}

// Line renders a task's state at its end: name, bar, count, rate over its
// whole time.
func Line(name string, done, total int64, elapsed time.Duration) string {
	rate := overall(done, elapsed)
	eta, hasETA := time.Duration(0), false
	if rate > 0 && total > 0 && done < total {
		eta, hasETA = remaining(total-done, rate), true
	}
	return line(name, done, total, elapsed, rate, eta, hasETA)
}

func line(name string, done, total int64, elapsed time.Duration, rate float64, eta time.Duration, hasETA bool) string {
	r := "-/s"
	if rate > 0 {
		r = fmt.Sprintf("%.0f/s", rate)
	}
	if total <= 0 {
		return fmt.Sprintf("%-28s %d  %s  %s", name, done, r, elapsed.Round(time.Second))
	}
	frac := min(float64(done)/float64(total), 1)
	const width = 24
	fill := int(frac * width)
	e := "-"
	if hasETA {
		e = eta.String()
	}
	return fmt.Sprintf("%-28s [%s%s] %d/%d %3.0f%%  %s  %s  ETA %s", name,
		strings.Repeat("=", fill), strings.Repeat(" ", width-fill), done, total, 100*frac, r, elapsed.Round(time.Second), e)
}

// Log writes a structured log line per task every Every (also while no
// unit comes), and one at the end.
type Log struct {
	L     logrus.FieldLogger
	Every time.Duration
	now   clock
}

// NewLog logs through l every period.
func NewLog(l logrus.FieldLogger, every time.Duration) *Log {
	return &Log{L: l, Every: every, now: time.Now}
}

// Start begins logging a task.
func (l *Log) Start(name string, total int64) Task {
	now := l.now()
	t := &logTask{l: l, name: name, m: meter{total: total, start: now}, logged: now, stop: make(chan struct{})}
	beat(l.Every, t.stop, t.tick)
	return t
}

type logTask struct {
	mu     sync.Mutex
	l      *Log
	name   string
	m      meter
	logged time.Time
	stop   chan struct{}
	ended  bool
}

// fields are the task's state: done, total, elapsed; the rate and ETA once
// units have come for a second.
func (t *logTask) fields(now time.Time, end bool) logrus.Fields {
	elapsed := now.Sub(t.m.start)
	f := logrus.Fields{"task": t.name, "done": t.m.done, "elapsed": elapsed.Round(time.Second).String()}
	if t.m.total > 0 {
		f["total"] = t.m.total
	}
	if end {
		f["per_second"] = int64(overall(t.m.done, elapsed))
		return f
	}
	if rate, ok := t.m.rate(now); ok {
		f["per_second"] = int64(rate)
	}
	if eta, ok := t.m.eta(now); ok {
		f["eta"] = eta.String()
	}
	return f
}

func (t *logTask) Add(n int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.l.now()
	t.m.add(n, now)
	t.logDue(now)
}

// tick logs a task that has not logged for a period, units or none.
func (t *logTask) tick() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.logDue(t.l.now())
}

func (t *logTask) logDue(now time.Time) {
	if t.ended || now.Sub(t.logged) < t.l.Every {
		return
	}
	t.logged = now
	t.l.L.WithFields(t.fields(now, false)).Info("progress")
}

func (t *logTask) Done() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ended {
		return
	}
	t.ended = true
	close(t.stop)
	t.l.L.WithFields(t.fields(t.l.now(), true)).Info("progress: done")
}

// remaining is how long left units take at rate per second.
func remaining(left int64, rate float64) time.Duration {
	return time.Duration(float64(left) / rate * float64(time.Second)).Round(time.Second)
}
