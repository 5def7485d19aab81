package server

import (
	"bytes"
	"context"
	"io"
	"math"
	"runtime/debug"
	"strings"
	"sync"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
)

// The server raises its host's GC target and sets a soft memory limit
// while it runs, unless GOGC and GOMEMLIMIT say otherwise, and gives the
// old ones back when it stops.
func TestStartSetsTheHostsGCTarget(t *testing.T) {
	const noLimit = math.MaxInt64
	for _, tt := range []struct {
		name, gogc, gomemlimit string
		while, before          int
		limitWhile             int64
	}{
		{"default", "", "", gcPercent, 100, memLimit},
		{"GOGC and GOMEMLIMIT set", "150", "1GiB", 150, 150, noLimit},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("GOGC", tt.gogc)
			t.Setenv("GOMEMLIMIT", tt.gomemlimit)
			prev := debug.SetGCPercent(tt.before)
			defer debug.SetGCPercent(prev)
			prevLimit := debug.SetMemoryLimit(noLimit)
			defer debug.SetMemoryLimit(prevLimit)
			s, err := Start(context.Background(), Options{Dir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			if got := debug.SetGCPercent(tt.while); got != tt.while {
				t.Errorf("GC target while serving = %d, want %d", got, tt.while)
			}
			if got := debug.SetMemoryLimit(-1); got != tt.limitWhile {
				t.Errorf("memory limit while serving = %d, want %d", got, tt.limitWhile)
			}
			s.Stop()
			if got := debug.SetGCPercent(tt.before); got != tt.before {
				t.Errorf("GC target after Stop = %d, want %d", got, tt.before)
			}
			if got := debug.SetMemoryLimit(-1); got != noLimit {
				t.Errorf("memory limit after Stop = %d, want none", got)
			}
		})
	}
}

// The server's log carries no wire dumps of the commands it refuses: the
// driver's endSessions at every disconnect, a duplicate key.
func TestLogHasNoWireDumps(t *testing.T) {
	var log bytes.Buffer
	s, err := Start(context.Background(), Options{Dir: t.TempDir(), Log: &syncWriter{w: &log}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		c, err := mongo.Connect(ctx, options.Client().ApplyURI(s.URI()))
		if err != nil {
			t.Fatal(err)
		}
		coll := c.Database("quiet").Collection("c")
		_, _ = coll.InsertOne(ctx, bson.D{{Key: "_id", Value: 1}})
		if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: 1}}); err == nil {
			t.Error("a duplicate _id was taken")
		}
		_ = c.Disconnect(ctx)
	}
	s.Stop()
	if n := strings.Count(log.String(), "\n"); strings.Contains(log.String(), "Response") || n > 5 {
		t.Errorf("the server logged %d lines, with wire dumps:\n%s", n, log.String())
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
