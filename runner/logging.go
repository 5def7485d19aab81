package runner

import (
	"io"
	"os"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/tenantmigrate/runner/runner/config"
)

// NewLogger returns a logrus logger as configured: JSON for services (no
// terminal), readable text on a terminal. The runner never logs identifiers,
// emails or names at info level, and prints URIs only through RedactURI.
func NewLogger(c config.Log, w io.Writer) *logrus.Logger {
	l := logrus.New()
	l.SetOutput(w)
	level, err := logrus.ParseLevel(c.Level)
	if err != nil {
		level = logrus.InfoLevel
	}
	l.SetLevel(level)
	format := c.Format
	if format == "auto" {
		format = "json"
		if isTerminal(w) {
			format = "text"
		}
	}
	if format == "json" {
		l.SetFormatter(&logrus.JSONFormatter{})
	} else {
		l.SetFormatter(&logrus.TextFormatter{FullTimestamp: true, TimestampFormat: "15:04:05"})
	}
	return l
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// RedactURI hides the password of a MongoDB URI. It does not parse the URI
// as a URL: a multi-host URI (h1:27017,h2:27017) is not one.
func RedactURI(uri string) string {
	scheme, rest, ok := strings.Cut(uri, "://")
	if !ok {
		return uri
	}
	end := strings.IndexAny(rest, "/?")
	if end < 0 {
		end = len(rest)
	}
	at := strings.LastIndex(rest[:end], "@")
	if at < 0 {
		return uri
	}
	user, _, hasPass := strings.Cut(rest[:at], ":")
	if !hasPass {
		return uri
	}
	return scheme + "://" + user + ":xxxxx" + rest[at:]
}
