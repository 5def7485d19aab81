package catchup

import (
	"strings"
	"testing"
	"time"
)

func TestOptionsValidate(t *testing.T) {
	for _, tt := range []struct {
		o   Options
		key string
	}{
		{DefaultOptions(), ""},
		{Options{Margin: -time.Second, MaxScope: 1}, "catchup.margin"},
		{Options{MaxScope: 0}, "catchup.max_scope"},
	} {
		err := tt.o.Validate()
		if (err == nil) != (tt.key == "") || err != nil && !strings.Contains(err.Error(), tt.key) {
			t.Errorf("%+v: Validate = %v, want an error naming %q", tt.o, err, tt.key)
		}
	}
}
