package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/tenantmigrate/runner/model"
)

// FollowFigures are `runner follow`'s under a steady stream of legacy
// edits (--follow-rate a second for --follow-seconds), as an old replica
// writes during a long rolling deploy.
type FollowFigures struct {
	// Rate is the edits a second asked for; Writes those made in Seconds
	// (a slow server makes fewer).
	Rate    int     `json:"rate_per_second"`
	Seconds float64 `json:"seconds"`
	Writes  int     `json:"writes"`
	// Rounds are follow's catch-ups while the edits came; Took their
	// durations; Lag the lag each printed (the age of the oldest change
	// not carried yet, right after it: at most its own duration).
	Rounds  int     `json:"rounds"`
	TookMax float64 `json:"took_max_seconds"`
	TookAvg float64 `json:"took_avg_seconds"`
	// Behind is the longest a change waited to be carried: a round's
	// duration plus the pause before it.
	Behind float64 `json:"behind_max_seconds"`
	// Caught: after the edits stopped, follow carried every one of them.
	Caught bool `json:"caught"`
}

// followRound is one line of `runner follow --json`.
type followRound struct {
	Changed int           `json:"changed"`
	Took    string        `json:"took"`
	Lag     time.Duration `json:"lag_ns"`
}

// followInterval is follow's pause between two catch-ups here.
const followInterval = 2 * time.Second

// follow runs `runner follow` while a writer edits rate legacy accounts a
// second for d, then waits until the last edit is carried and stops it.
func (h *harness) follow(ctx context.Context, rate int, d time.Duration) (*FollowFigures, error) {
	fmt.Fprintf(h.log, "runner follow while %d legacy edits a second come for %s...\n", rate, d)
	f := &FollowFigures{Rate: rate, Seconds: d.Seconds()}
	cmd := exec.CommandContext(ctx, h.runner, "follow", "--json", "--interval", followInterval.String())
	cmd.Dir, cmd.Env = filepath.Dir(h.runner), h.env
	cmd.Stderr = &prefixWriter{w: h.log, prefix: "  follow| "}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return f, err
	}
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 30 * time.Second
	if err := cmd.Start(); err != nil {
		return f, fmt.Errorf("runner follow: %w", err)
	}
	var rounds []followRound
	var mu sync.Mutex
	read := make(chan struct{})
	go func() {
		defer close(read)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 0, 1<<20), 1<<24)
		for sc.Scan() {
			var r followRound
			if json.Unmarshal(sc.Bytes(), &r) == nil {
				mu.Lock()
				rounds = append(rounds, r)
				mu.Unlock()
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	stop := func() {
		_ = cmd.Process.Signal(os.Interrupt)
		<-read
		_ = cmd.Wait()
	}
	last, err := h.editAtRate(ctx, rate, d, f)
	if h.loaded != nil {
		h.loaded()
	}
	if err != nil {
		stop()
		return f, err
	}
	// Wait until the last edit is carried: its tenant account has its name.
	deadline := time.Now().Add(5 * time.Minute)
	tenants := h.db.Collection(model.DefaultNames().TenantsAccounts)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		n, err := tenants.CountDocuments(ctx, bson.D{{Key: "username", Value: last}})
		if err == nil && n > 0 {
			f.Caught = true
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	stop()
	var took []float64
	for _, r := range rounds {
		if dd, err := time.ParseDuration(r.Took); err == nil {
			took = append(took, dd.Seconds())
		}
	}
	f.Rounds = len(took)
	if len(took) > 0 {
		f.TookMax = slices.Max(took)
		var sum float64
		for _, t := range took {
			sum += t
		}
		f.TookAvg = sum / float64(len(took))
		f.Behind = f.TookMax + followInterval.Seconds()
	}
	if !f.Caught {
		return f, fmt.Errorf("runner follow did not carry the last edit within 5 minutes of the edits' end")
	}
	return f, nil
}

// editAtRate edits rate one-to-one legacy accounts a second for d (a new
// username and date_updated, as an old replica writes), spread over the
// collection, and returns the last username written.
func (h *harness) editAtRate(ctx context.Context, rate int, d time.Duration, f *FollowFigures) (string, error) {
	names := model.DefaultNames()
	accounts := h.db.Collection(names.Accounts)
	n := int(float64(rate) * d.Seconds())
	var ids []any
	// One-to-one people: their tenant account takes their username.
	cur, err := h.db.Collection(names.TenantsAccounts).Find(ctx, bson.D{{Key: model.FieldMemberships, Value: bson.D{{Key: "$size", Value: 1}}}},
		options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}).SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return "", err
	}
	for i := 0; cur.Next(ctx); i++ {
		if i%7 == 0 {
			ids = append(ids, cur.Current.Lookup("_id"))
		}
	}
	if err := cur.Close(ctx); err != nil {
		return "", err
	}
	if len(ids) == 0 {
		return "", fmt.Errorf("no accounts to edit")
	}
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	start := time.Now()
	defer func() { f.Seconds = time.Since(start).Seconds() }()
	last := ""
	for i := range n {
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-tick.C:
		}
		name := fmt.Sprintf("followed-%d", i)
		_, err := accounts.UpdateOne(ctx, bson.D{{Key: "_id", Value: ids[i%len(ids)]}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "username", Value: name}, {Key: model.FieldDateUpdated, Value: time.Now().UTC()}}}})
		if err != nil {
			return last, fmt.Errorf("edit: %w", err)
		}
		f.Writes++
		last = name
	}
	return last, nil
}
