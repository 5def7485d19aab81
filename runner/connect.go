package runner

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/event"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
	"go.mongodb.org/mongo-driver/mongo/readpref"
	"go.mongodb.org/mongo-driver/x/mongo/driver/topology"

	"github.com/tenantmigrate/runner/runner/config"
	"github.com/tenantmigrate/runner/runner/internal/servererr"
)

// connect opens a client and pings the primary, so that a wrong URI, an
// absent server or refused credentials fail here, in one line, rather than
// in the middle of a step.
func connect(ctx context.Context, c config.MongoDB, monitor *event.CommandMonitor) (*mongo.Client, error) {
	opts := options.Client().ApplyURI(c.URI).
		SetServerSelectionTimeout(c.ConnectTimeout).
		SetConnectTimeout(c.ConnectTimeout).
		SetAppName("tenants-accounts-runner")
	if monitor != nil {
		opts.SetMonitor(monitor)
	}
	if err := opts.Validate(); err != nil {
		return nil, uriError(err, c)
	}
	client, err := mongo.Connect(ctx, opts)
	if err != nil {
		return nil, uriError(err, c)
	}
	pctx, cancel := context.WithTimeout(ctx, c.ConnectTimeout+time.Second)
	defer cancel()
	if err := client.Ping(pctx, readpref.Primary()); err != nil {
		_ = client.Disconnect(context.Background())
		return nil, classifyConnectErr(err, c)
	}
	return client, nil
}

// uriError is a URI the driver refused: a configuration error, but for a
// mongodb+srv:// name whose DNS lookup failed, which is a server that
// cannot be reached, as with a plain host name that does not resolve.
func uriError(err error, c config.MongoDB) error {
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return fmt.Errorf("%w at %s: %s", ErrUnreachable, RedactURI(c.URI), RedactIn(dns.Error(), c.URI))
	}
	return &config.Error{Key: "mongodb.uri", Msg: RedactIn(err.Error(), c.URI)}
}

// classifyConnectErr tells refused credentials (ErrAuth) from a server
// that cannot be reached (ErrUnreachable), by the driver's error types: an
// authentication error of a connection's handshake, the server's
// AuthenticationFailed code, or the last error the topology recorded for
// each server it tried.
func classifyConnectErr(err error, c config.MongoDB) error {
	where := RedactURI(c.URI)
	causes := []error{err}
	var sel topology.ServerSelectionError
	if errors.As(err, &sel) {
		for _, s := range sel.Desc.Servers {
			if s.LastError != nil {
				causes = append(causes, s.LastError)
			}
		}
	}
	for _, cause := range causes {
		if servererr.IsAuthentication(cause) {
			return fmt.Errorf("%w at %s: check the user and password of mongodb.uri", ErrAuth, where)
		}
	}
	reason := "no server answered within " + c.ConnectTimeout.String()
	if len(causes) > 1 {
		reason = causes[len(causes)-1].Error()
	}
	return fmt.Errorf("%w at %s: %s", ErrUnreachable, where, RedactIn(reason, c.URI))
}

// RedactIn removes the URI's password, as written and unescaped, from a
// message that may quote it, and folds the message onto one line.
func RedactIn(msg, uri string) string {
	if red := RedactURI(uri); red != uri {
		msg = strings.ReplaceAll(msg, uri, red)
		if _, rest, ok := strings.Cut(uri, "://"); ok {
			end := strings.IndexAny(rest, "/?")
			if end < 0 {
				end = len(rest)
			}
			if at := strings.LastIndex(rest[:end], "@"); at > 0 {
				if _, pass, ok := strings.Cut(rest[:at], ":"); ok && pass != "" {
					msg = strings.ReplaceAll(msg, pass, "xxxxx")
					if p, err := url.PathUnescape(pass); err == nil && p != pass {
						msg = strings.ReplaceAll(msg, p, "xxxxx")
					}
				}
			}
		}
	}
	return strings.Join(strings.Fields(msg), " ")
}
