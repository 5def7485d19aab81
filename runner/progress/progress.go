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

// Bar draws one line per task on a terminal, redrawn at most every 200 ms.
type Bar struct {
	W   io.Writer
	now clock
}

// NewBar draws on w.
func NewBar(w io.Writer) *Bar { return &Bar{W: w, now: time.Now} }

// Start begins drawing a task.
func (b *Bar) Start(name string, total int64) Task {
	return &barTask{w: b.W, now: b.now, name: name, total: total, start: b.now()}
}

type barTask struct {
	mu    sync.Mutex
	w     io.Writer
	now   clock
	name  string
	total int64
	done  int64
	start time.Time
	drawn time.Time
}

func (t *barTask) Add(n int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.done += n
	if now := t.now(); now.Sub(t.drawn) >= 200*time.Millisecond {
		t.drawn = now
		fmt.Fprintf(t.w, "\r%s", Line(t.name, t.done, t.total, now.Sub(t.start)))
	}
}

func (t *barTask) Done() {
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprintf(t.w, "\r%s\n", Line(t.name, t.done, t.total, t.now().Sub(t.start)))
}

// Line renders a task's state: name, bar, count, rate, ETA.
func Line(name string, done, total int64, elapsed time.Duration) string {
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(done) / s
	}
	if total <= 0 {
		return fmt.Sprintf("%-28s %d  %.0f/s  %s", name, done, rate, elapsed.Round(time.Second))
	}
	frac := min(float64(done)/float64(total), 1)
	const width = 24
	fill := int(frac * width)
	eta := "-"
	if rate > 0 && done < total {
		eta = remaining(total-done, rate).String()
	}
	return fmt.Sprintf("%-28s [%s%s] %d/%d %3.0f%%  %.0f/s  ETA %s", name,
		strings.Repeat("=", fill), strings.Repeat(" ", width-fill), done, total, 100*frac, rate, eta)
}

// Log writes a structured log line per task every Every, and one at the end.
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
	return &logTask{l: l, name: name, total: total, start: now, logged: now}
}

type logTask struct {
	mu     sync.Mutex
	l      *Log
	name   string
	total  int64
	done   int64
	start  time.Time
	logged time.Time
}

func (t *logTask) fields(now time.Time) logrus.Fields {
	elapsed := now.Sub(t.start)
	f := logrus.Fields{"task": t.name, "done": t.done, "elapsed": elapsed.Round(time.Second).String()}
	if s := elapsed.Seconds(); s > 0 {
		rate := float64(t.done) / s
		f["per_second"] = int64(rate)
		if t.total > 0 && rate > 0 && t.done < t.total {
			f["eta"] = remaining(t.total-t.done, rate).String()
		}
	}
	if t.total > 0 {
		f["total"] = t.total
	}
	return f
}

func (t *logTask) Add(n int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.done += n
	if now := t.l.now(); now.Sub(t.logged) >= t.l.Every {
		t.logged = now
		t.l.L.WithFields(t.fields(now)).Info("progress")
	}
}

func (t *logTask) Done() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.l.L.WithFields(t.fields(t.l.now())).Info("progress: done")
}

// remaining is how long left units take at rate per second.
func remaining(left int64, rate float64) time.Duration {
	return time.Duration(float64(left) / rate * float64(time.Second)).Round(time.Second)
}
