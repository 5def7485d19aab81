package phase2

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/tenantmigrate/runner/model"
	"github.com/tenantmigrate/runner/pipelines"
)

// Ranges the runner chooses (Config.RangeSize 0): about rangesPerRun per
// parallel run, so that the runs stay busy to the end, of at least
// minAutoRange accounts (a range costs a few counts and a skip) and at most
// maxAutoRange (a server-side run holds its range: DocumentDB's refresh
// $lookup over one range of a million accounts grew one backend past 23 GB).
const (
	rangesPerRun = 4
	minAutoRange = 10000
	maxAutoRange = 100000
)

// autoRangeSize is the range size for total accounts and parallel runs; 0:
// one range.
func autoRangeSize(total int64, parallel int) int {
	runs := int64(max(parallel, 1) * rangesPerRun)
	size := min(max((total+runs-1)/runs, minAutoRange), maxAutoRange)
	if size >= total {
		return 0
	}
	return int(size)
}

// runRanges cuts the accounts from `after` on into consecutive _id ranges
// (one, nil, when the size is 0) and runs them, up to Config.Parallel at
// once, a server being faster at several server-side runs than at one
// (each is single-threaded on MongoDB and on DocumentDB). done gets each
// range's report as it finishes, one call at a time. The checkpoint is the
// end of the longest run of finished ranges from the start: a run killed
// anywhere resumes after it, and runs again (idempotently) any range that
// had finished beyond it.
func runRanges(ctx context.Context, cfg Config, after model.ID,
	run func(ctx context.Context, seq int, r *pipelines.Range) (*Report, error),
	done func(r *pipelines.Range, part *Report),
) error {
	size := cfg.RangeSize
	if size == 0 {
		size = autoRangeSize(cfg.Total, cfg.Parallel)
	}
	accounts := cfg.DB.Collection(cfg.Names.Accounts)
	parent := ctx
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	slots := make(chan struct{}, max(cfg.Parallel, 1))
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		ends     []model.ID // each range's end, by seq (zero: to the last)
		finished []bool
		next     int // the first range not finished
		firstErr error
	)
	failLocked := func(err error) {
		if firstErr == nil {
			firstErr = err
			cancel(err)
		}
	}
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		failLocked(err)
	}
	finish := func(seq int, r *pipelines.Range, part *Report) {
		mu.Lock()
		defer mu.Unlock()
		done(r, part) // written: counted, whatever another range did
		finished[seq] = true
		from := next
		for next < len(finished) && finished[next] {
			next++
		}
		if next == from || cfg.DryRun || ends[next-1].IsZero() || firstErr != nil {
			return
		}
		if err := saveCheckpoint(ctx, cfg, ends[next-1]); err != nil {
			failLocked(err)
		}
	}
	for seq := 0; ; seq++ {
		r := &pipelines.Range{After: after}
		if size > 0 {
			through, err := rangeEnd(ctx, accounts, after, size)
			if err != nil {
				fail(err)
				break
			}
			r.Through = through
		}
		if after.IsZero() && r.Through.IsZero() {
			r = nil
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		mu.Lock()
		end := model.ID{}
		if r != nil {
			end = r.Through
		}
		ends, finished = append(ends, end), append(finished, false)
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			part, err := run(ctx, seq, r)
			if err != nil {
				fail(err)
				return
			}
			finish(seq, r, part)
		}()
		if end.IsZero() {
			break
		}
		after = end
	}
	wg.Wait()
	if firstErr == nil && parent.Err() != nil {
		return context.Cause(parent)
	}
	return firstErr
}

// rangeEnd is the _id size accounts after `after` (zero: from the first)
// among the _ids the phases migrate, or zero for the rest.
func rangeEnd(ctx context.Context, accounts *mongo.Collection, after model.ID, size int) (model.ID, error) {
	filter := (&pipelines.Range{After: after}).MigratedIDs()
	var doc struct {
		ID model.ID `bson:"_id"`
	}
	err := accounts.FindOne(ctx, filter, options.FindOne().SetSort(bson.D{{Key: "_id", Value: 1}}).
		SetSkip(int64(size-1)).SetProjection(bson.D{{Key: "_id", Value: 1}})).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return model.ID{}, nil
	}
	if err != nil {
		return model.ID{}, fmt.Errorf("find range end: %w", err)
	}
	return doc.ID, nil
}
