// Package refusal writes a server's refusal, as the probes that choose a
// path by what the server takes report it (servererr tells a refusal from
// no answer).
package refusal

import "strings"

// Flat is s on one line: its runs of white space, newlines included, as
// one space.
func Flat(s string) string { return strings.Join(strings.Fields(s), " ") }

// OneLine is a refusal's text for a report: one line, at most 500 bytes.
func OneLine(s string) string {
	s = Flat(s)
	if len(s) > 500 {
		s = s[:500] + "..."
	}
	return s
}
