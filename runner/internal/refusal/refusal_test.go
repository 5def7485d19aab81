package refusal

import (
	"strings"
	"testing"
)

func TestOneLine(t *testing.T) {
	if got := OneLine("a\n  b\tc "); got != "a b c" {
		t.Errorf("OneLine = %q", got)
	}
	if got := OneLine(strings.Repeat("x", 600)); len(got) != 503 || !strings.HasSuffix(got, "...") {
		t.Errorf("OneLine of 600 bytes = %d bytes", len(got))
	}
}
