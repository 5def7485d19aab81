package runner

import (
	"testing"
)

func TestRedactURI(t *testing.T) {
	tests := []struct{ in, want string }{
		{"mongodb://127.0.0.1:27017", "mongodb://127.0.0.1:27017"},
		{"mongodb://user:s3cret@host:27017/db", "mongodb://user:xxxxx@host:27017/db"},
		{"mongodb://user:p@ss@h1:1,h2:2/?authSource=admin", "mongodb://user:xxxxx@h1:1,h2:2/?authSource=admin"},
		{"mongodb+srv://u:pw@cluster.example.net", "mongodb+srv://u:xxxxx@cluster.example.net"},
		{"mongodb://onlyuser@host", "mongodb://onlyuser@host"},
		{"mongodb://host/?authMechanism=MONGODB-X509&x=a@b", "mongodb://host/?authMechanism=MONGODB-X509&x=a@b"},
	}
	for _, tt := range tests {
		if got := RedactURI(tt.in); got != tt.want {
			t.Errorf("RedactURI(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	msg := RedactIn("dial mongodb://user:s3cret@host: auth failed for s3cret", "mongodb://user:s3cret@host")
	if msg != "dial mongodb://user:xxxxx@host: auth failed for xxxxx" {
		t.Errorf("RedactIn = %q", msg)
	}
	msg = RedactIn("bad password p@ss", "mongodb://user:p%40ss@host")
	if msg != "bad password xxxxx" {
		t.Errorf("RedactIn = %q", msg)
	}
}
