package testenv

import (
	"net/url"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/mongo/options"
)

// MONGODB_URI as the README writes it (no trailing "/"), with one, and
// with a query of its own: the proxied URI is one the driver takes, and
// keeps the database path and the query.
func TestThroughTakesEveryURIForm(t *testing.T) {
	for _, tt := range []struct{ uri, keep string }{
		{"mongodb://127.0.0.1:27017", ""},
		{"mongodb://127.0.0.1:27017/", ""},
		{"mongodb://127.0.0.1:27017/?replicaSet=rs0", "replicaSet=rs0"},
		{"mongodb://user:pw@127.0.0.1:27017/admin?authSource=admin", "/admin?"},
	} {
		u, err := url.Parse(tt.uri)
		if err != nil {
			t.Fatal(err)
		}
		got := Through(u, "127.0.0.1:40000", map[string]string{"retryWrites": "false"})
		if err := options.Client().ApplyURI(got).Validate(); err != nil || !strings.Contains(got, "127.0.0.1:40000") ||
			!strings.Contains(got, "retryWrites=false") || !strings.Contains(got, tt.keep) {
			t.Errorf("Through(%s) = %s (%v)", tt.uri, got, err)
		}
	}
}
