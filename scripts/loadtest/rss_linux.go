package main

import (
	"bytes"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

// rssWatch measures a child's peak resident set size.
//
// The child's rusage alone does not do: Linux starts a child's ru_maxrss at
// its parent's high-water mark when the child execs (Go starts children
// with vfork semantics, so the mm the exec leaves is the parent's), and our
// process, holding the embedded server and the fixture generator, is usually
// the bigger one. So rusage counts only when it exceeds our own high-water
// mark; otherwise the peak is the child's own VmHWM, sampled from
// /proc/PID/status while it runs.
type rssWatch struct {
	parentHWM int64 // ours, just after the child's exec
	sampled   atomic.Int64
	stopc     chan struct{}
	done      chan struct{}
}

// sampleEvery is how often a child's VmHWM is read; growth in its last
// interval before exit is missed unless rusage shows it.
const sampleEvery = 10 * time.Millisecond

// watchRSS starts sampling the child pid, which has exec'd already.
func watchRSS(pid int) *rssWatch {
	w := &rssWatch{stopc: make(chan struct{}), done: make(chan struct{})}
	w.parentHWM = selfHWM()
	// The open file stays bound to this process, even should its pid be
	// reused once it is reaped.
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		close(w.done)
		return w
	}
	go func() {
		defer close(w.done)
		defer f.Close()
		t := time.NewTicker(sampleEvery)
		defer t.Stop()
		for {
			if kib, ok := statusHWM(f); ok {
				w.sampled.Store(max(w.sampled.Load(), kib))
			}
			select {
			case <-w.stopc:
				return
			case <-t.C:
			}
		}
	}()
	return w
}

// peakKiB stops sampling and returns the child's peak RSS in KiB, 0 if
// unknown. ps is the child's state after Wait.
func (w *rssWatch) peakKiB(ps *os.ProcessState) int64 {
	close(w.stopc)
	<-w.done
	// The child's own VmHWM, sampled from /proc, is the truth whenever it
	// was read at all; rusage is a fallback for a child too short-lived to
	// sample, since it can carry memory counted at the fork from us.
	if kib := w.sampled.Load(); kib > 0 {
		return kib
	}
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok && ru != nil && int64(ru.Maxrss) > w.parentHWM {
		return int64(ru.Maxrss) // KiB
	}
	return 0
}

// selfHWM is our own high-water mark in KiB, 0 if unknown.
func selfHWM() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	kib, _ := statusHWM(f)
	return kib
}

// statusHWM reads the VmHWM line (KiB) of a /proc status file from its start.
func statusHWM(f *os.File) (int64, bool) {
	buf := make([]byte, 8192)
	n, err := f.ReadAt(buf, 0)
	if n == 0 && err != nil {
		return 0, false
	}
	_, rest, ok := bytes.Cut(buf[:n], []byte("\nVmHWM:"))
	if !ok {
		return 0, false // a zombie has no memory lines
	}
	line, _, _ := bytes.Cut(rest, []byte("\n"))
	fields := bytes.Fields(line) // "1234 kB"
	if len(fields) == 0 {
		return 0, false
	}
	kib, err := strconv.ParseInt(string(fields[0]), 10, 64)
	return kib, err == nil
}
