//go:build !linux

package main

import "os"

// rssWatch would measure a child's peak resident set size; loadtest does so
// on Linux only (elsewhere a child's rusage may report its parent's peak).
type rssWatch struct{}

func watchRSS(int) *rssWatch { return &rssWatch{} }

// peakKiB is 0: unknown.
func (*rssWatch) peakKiB(*os.ProcessState) int64 { return 0 }
