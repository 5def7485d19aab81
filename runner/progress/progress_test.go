package progress

import (
	"bytes"
	"strings"
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
