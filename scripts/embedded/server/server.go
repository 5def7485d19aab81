// Package server starts FerretDB (SQLite backend) in-process: a real MongoDB
// wire-protocol server that needs no download, used by the quick start and by
// the tests when MONGODB_URI is not set.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

// Server is a running embedded FerretDB.
type Server struct {
	uri    string
	addr   string
	cancel context.CancelFunc
	done   chan error
	// gcPercent is the host's GC target before Start; -2: Start left it.
	gcPercent int
	// memLimit is the host's soft memory limit before Start; -1: left.
	memLimit int64
}

// Settings of the embedded server only: it is a test and quick-start
// server, profiled to spend half its CPU decoding its stored JSON, a third
// allocating and collecting. Neither is ever applied to a server the runner
// is pointed at, nor to the runner's own process (the load test and the
// quick start run the runner as a child process).
const (
	// gcPercent is the GC target of the process hosting the server while
	// it runs (Go's default is 100): fewer collections for some memory,
	// measured x1.3 on a full scan, x1.4 on a sorted one, x1.17 on inserts.
	// GOGC in the environment wins.
	gcPercent = 400
	// memLimit bounds what that costs: a soft limit of the host's heap
	// (the 93,000-account load test peaked at 9.8 GB with the target
	// alone, 4.2 GB with Go's default), past which the GC works harder
	// again. GOMEMLIMIT in the environment wins.
	memLimit = 4 << 30
	// sqlitePragmas are added to FerretDB's own (WAL, a busy timeout): no
	// fsync per commit, x1.18 on inserts. A crash of the machine may lose
	// the last writes of a server whose data is a test's. Journal modes
	// other than WAL, and mode=memory, deadlock or fail a write while a
	// cursor is open: not used.
	sqlitePragmas = "_pragma=synchronous(off)"
)

// Options configure Start.
type Options struct {
	// Addr is host:port to listen on; empty picks a free port on 127.0.0.1.
	Addr string
	// Dir holds the SQLite files; it is created if missing.
	Dir string
	// Log receives FerretDB's own log; nil discards it.
	Log io.Writer
}

// Start starts the server and returns once it accepts connections.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.Dir == "" {
		return nil, errors.New("embedded server: a data directory is required")
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("embedded server: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("embedded server: %w", err)
	}
	addr := opts.Addr
	if addr == "" {
		if addr, err = freeAddr(); err != nil {
			return nil, fmt.Errorf("embedded server: %w", err)
		}
	}
	// Without a log writer, a discarding handler: FerretDB formats every SQL
	// statement for its logger, which costs a sixth of its CPU even when
	// the text goes nowhere.
	var handler slog.Handler = slog.DiscardHandler
	if opts.Log != nil {
		handler = quietWire{slog.NewTextHandler(opts.Log, &slog.HandlerOptions{Level: slog.LevelWarn})}
	}
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: addr},
		Logger:    slog.New(handler),
		Handler:   "sqlite",
		SQLiteURL: "file:" + dir + "/?" + sqlitePragmas,
	})
	if err != nil {
		return nil, fmt.Errorf("embedded server: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	s := &Server{uri: f.MongoDBURI(), addr: addr, cancel: cancel, done: make(chan error, 1), gcPercent: -2, memLimit: -1}
	if os.Getenv("GOGC") == "" {
		s.gcPercent = debug.SetGCPercent(gcPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		s.memLimit = debug.SetMemoryLimit(memLimit)
	}
	go func() { f.Run(runCtx); s.done <- nil }()

	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return s, nil
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("embedded server: not listening on %s after 30s: %w", addr, err)
		}
		select {
		case <-ctx.Done():
			s.Stop()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// URI is the mongodb:// URI of the server.
func (s *Server) URI() string { return s.uri }

// Addr is the host:port the server listens on.
func (s *Server) Addr() string { return s.addr }

// Stop stops the server, waits for it to finish and gives the host back
// its GC target and memory limit.
func (s *Server) Stop() {
	s.cancel()
	<-s.done
	if s.gcPercent != -2 {
		debug.SetGCPercent(s.gcPercent)
	}
	if s.memLimit != -1 {
		debug.SetMemoryLimit(s.memLimit)
	}
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// quietWire drops FerretDB's dumps of a command it answered with an error
// ("Response header: ..." and a multi-line "Response message: ..." at
// warning level). The client gets that error and reports it itself; the
// dumps are noise, a dozen lines for every disconnect (FerretDB 1 answers
// the driver's endSessions with "no such command").
type quietWire struct{ slog.Handler }

func (q quietWire) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelError && (strings.HasPrefix(r.Message, "Response header: ") || strings.HasPrefix(r.Message, "Response message:")) {
		return nil
	}
	return q.Handler.Handle(ctx, r)
}

func (q quietWire) WithAttrs(attrs []slog.Attr) slog.Handler {
	return quietWire{q.Handler.WithAttrs(attrs)}
}

func (q quietWire) WithGroup(name string) slog.Handler { return quietWire{q.Handler.WithGroup(name)} }
