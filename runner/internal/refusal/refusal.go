// Package refusal writes a server's refusal, as the probes that choose a
// path by what the server takes report it (servererr tells a refusal from
// no answer).
package refusal

import "strings"

// OneLine is a refusal's text for a report: one line, at most 500 bytes.
func OneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 500 {
		s = s[:500] + "..."
	}
	return s
}
