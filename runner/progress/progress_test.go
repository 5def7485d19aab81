package progress

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

func TestLine(t *testing.T) {
	tests := []struct {
		done, total int64
		elapsed     time.Duration
		want        []string
	}{
		{50, 100, 10 * time.Second, []string{"[============            ]", "50/100", " 50%", "5/s", "ETA 10s"}},
		{100, 100, 4 * time.Second, []string{"[========================]", "100%", "25/s", "ETA -"}},
		{30, 0, 3 * time.Second, []string{"30", "10/s", "3s"}},
		{0, 10, 0, []string{"0/10", "ETA -"}},
	}
	for _, tt := range tests {
		got := Line("task", tt.done, tt.total, tt.elapsed)
		for _, w := range tt.want {
			if !strings.Contains(got, w) {
				t.Errorf("Line(%d, %d, %s) = %q, want it to contain %q", tt.done, tt.total, tt.elapsed, got, w)
			}
		}
	}
}

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestLogEveryPeriodAndAtTheEnd(t *testing.T) {
	var buf bytes.Buffer
	l := logrus.New()
	l.SetOutput(&buf)
	l.SetFormatter(&logrus.JSONFormatter{})
	c := &fakeClock{t: time.Unix(0, 0)}
	r := &Log{L: l, Every: 10 * time.Second, now: c.now}
	task := r.Start("copy", 1000)
	for i := 0; i < 30; i++ {
		c.t = c.t.Add(time.Second)
		task.Add(10)
	}
	task.Done()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d log lines, want 3 periodic and 1 final: %s", len(lines), buf.String())
	}
	if !strings.Contains(lines[0], `"done":100`) || !strings.Contains(lines[0], `"eta":"1m30s"`) || !strings.Contains(lines[3], `"msg":"progress: done"`) {
		t.Errorf("log lines = %s", buf.String())
	}
}

func TestBarRedrawsAtMostEvery200ms(t *testing.T) {
	var buf bytes.Buffer
	c := &fakeClock{t: time.Unix(0, 0)}
	b := &Bar{W: &buf, now: c.now}
	task := b.Start("copy", 100)
	for i := 0; i < 100; i++ {
		c.t = c.t.Add(50 * time.Millisecond)
		task.Add(1)
	}
	task.Done()
	if n := strings.Count(buf.String(), "\r"); n < 20 || n > 30 {
		t.Errorf("%d redraws for 5 s of work, want about 25", n)
	}
	if !strings.HasSuffix(buf.String(), "\n") || !strings.Contains(buf.String(), "100/100") {
		t.Errorf("final line missing: %q", buf.String())
	}
}

// A task that waits before its first units still logs every period, and
// its rate and ETA run from its first units: no "0 a second, ETA hours"
// from the wait.
func TestLogRateFromTheFirstUnits(t *testing.T) {
	var buf bytes.Buffer
	l := logrus.New()
	l.SetOutput(&buf)
	l.SetFormatter(&logrus.JSONFormatter{})
	c := &fakeClock{t: time.Unix(0, 0)}
	r := &Log{L: l, Every: 10 * time.Second, now: c.now}
	task := r.Start("collect", 1000)
	c.t = c.t.Add(35 * time.Second)
	task.Add(1) // the first document, after the server's sort
	for i := 0; i < 10; i++ {
		c.t = c.t.Add(time.Second)
		task.Add(10)
	}
	task.Done()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d log lines, want 2 periodic and 1 final: %s", len(lines), buf.String())
	}
	if strings.Contains(lines[0], "per_second") || strings.Contains(lines[0], "eta") {
		t.Errorf("the first line, at the first unit, has a rate: %s", lines[0])
	}
	if !strings.Contains(lines[1], `"per_second":10`) || !strings.Contains(lines[1], `"eta":"1m30s"`) {
		t.Errorf("the second line's rate is not the work's: %s", lines[1])
	}
}

// With no unit coming, a task still logs every period.
func TestLogWhileWaiting(t *testing.T) {
	var buf syncBuffer
	l := logrus.New()
	l.SetOutput(&buf)
	l.SetFormatter(&logrus.JSONFormatter{})
	task := NewLog(l, 20*time.Millisecond).Start("sort", 0)
	time.Sleep(150 * time.Millisecond)
	task.Done()
	if n := strings.Count(buf.String(), `"msg":"progress"`); n < 2 {
		t.Errorf("%d progress lines in 150 ms of waiting, every 20 ms: %s", n, buf.String())
	}
}

// Lines written through the bar's Writer (the logger's) clear the bar
// first and draw it again after: never written onto it.
func TestBarKeepsLogLinesOffIt(t *testing.T) {
	var buf syncBuffer
	c := &fakeClock{t: time.Unix(0, 0)}
	b := &Bar{W: &buf, now: c.now}
	task := b.Start("merge", 100)
	c.t = c.t.Add(time.Second)
	task.Add(10)
	fmt.Fprint(b.Writer(), "INFO groups merged\n")
	task.Done()
	out := buf.String()
	i := strings.Index(out, "INFO groups merged")
	if i < 0 || !strings.HasSuffix(out[:i], "\r\033[K") {
		t.Errorf("the log line does not start on a cleared line: %q", out)
	}
	if rest := out[i+len("INFO groups merged\n"):]; !strings.HasPrefix(rest, "merge") {
		t.Errorf("the bar is not drawn again after the log line: %q", rest)
	}
}

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
