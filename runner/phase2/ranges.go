package phase2

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/tenantmigrate/runner/model"
	"github.com/tenantmigrate/runner/pipelines"
	"github.com/tenantmigrate/runner/runner/internal/servererr"
	"github.com/tenantmigrate/runner/runner/internal/sorted"
	"github.com/tenantmigrate/runner/runner/lease"
	"github.com/tenantmigrate/runner/runner/retry"
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

// cutRanges is the ends of every range but the last, which runs to the
// end: ranges of Config.RangeSize, else of the size autoRangeSize gives
// for the accounts there are (counted in the same pass: no estimate, which
// not every engine gives), as a multiple of minAutoRange.
func cutRanges(ctx context.Context, cfg Config, after model.ID) ([]model.ID, error) {
	if cfg.RangeSize > 0 {
		ends, _, err := rangeEnds(ctx, cfg, after, cfg.RangeSize)
		return ends, err
	}
	fine, n, err := rangeEnds(ctx, cfg, after, minAutoRange)
	if err != nil {
		return nil, err
	}
	return coarsen(fine, n, cfg.Parallel), nil
}

// coarsen keeps of fine, the end of every minAutoRange-th of n accounts,
// the ends of ranges of about autoRangeSize(n, parallel).
func coarsen(fine []model.ID, n int64, parallel int) []model.ID {
	size := autoRangeSize(n, parallel)
	if size == 0 {
		return nil
	}
	every := max(1, int(math.Round(float64(size)/minAutoRange)))
	var ends []model.ID
	for i := every - 1; i < len(fine); i += every {
		ends = append(ends, fine[i])
	}
	return ends
}

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
// (rangeEnds; one, nil, when the size is 0) and runs them, up to Config.Parallel at
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
	ranges, ends, err := plannedRanges(ctx, cfg, after)
	if err != nil {
		return err
	}
	parent := ctx
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	slots := make(chan struct{}, max(cfg.Parallel, 1))
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		finished []bool // by seq
		next     int    // the first range not finished
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
		// Past the last range, the run clears the checkpoint itself; a
		// scoped run keeps none.
		if next == from || next > len(ends) || cfg.DryRun || cfg.Scope != nil || firstErr != nil {
			return
		}
		if err := saveCheckpoint(ctx, cfg, ends[next-1]); err != nil {
			failLocked(err)
		}
	}
	for seq, r := range ranges {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		mu.Lock()
		finished = append(finished, false)
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
	}
	wg.Wait()
	if firstErr == nil && parent.Err() != nil {
		return context.Cause(parent)
	}
	return firstErr
}

// scopeChunk is how many _ids of a scoped run go in one range: one $in
// list, far below the 16 MB a command may hold.
const scopeChunk = 5000

// plannedRanges are the ranges of a run from `after` on, and the ends of
// all but the last (the checkpoints): consecutive _id ranges cut by
// cutRanges (one, nil, when it cuts none); for a scoped run, its _ids in
// lists of scopeChunk, with no ends.
func plannedRanges(ctx context.Context, cfg Config, after model.ID) ([]*pipelines.Range, []model.ID, error) {
	if cfg.Scope != nil {
		var out []*pipelines.Range
		for ids := range slices.Chunk(cfg.Scope, scopeChunk) {
			out = append(out, &pipelines.Range{IDs: ids})
		}
		return out, nil, nil
	}
	ends, err := cutRanges(ctx, cfg, after)
	if err != nil {
		return nil, nil, err
	}
	out := make([]*pipelines.Range, 0, len(ends)+1)
	for seq := 0; seq <= len(ends); seq++ {
		r := &pipelines.Range{After: after}
		if seq < len(ends) {
			r.Through = ends[seq]
		}
		if after.IsZero() && r.Through.IsZero() {
			r = nil
		}
		out = append(out, r)
		if seq < len(ends) {
			after = ends[seq]
		}
	}
	return out, ends, nil
}

// rangeEnds reads, in one sorted pass over the _ids the phases migrate
// after `after` (the _ids alone travel), every size-th _id, and how many
// _ids it read. One pass, not a skip per range: a server that sorts
// instead of walking its _id index (DocumentDB) sorts once. A broken read
// resumes after the last _id it had (sorted.Each).
func rangeEnds(ctx context.Context, cfg Config, after model.ID, size int) ([]model.ID, int64, error) {
	var ends []model.ID
	var n int64
	proj := bson.D{{Key: model.FieldID, Value: 1}}
	err := sorted.Each(ctx, cfg.DB.Collection(cfg.Names.Accounts), (&pipelines.Range{After: after}).MigratedIDs(), proj, cfg.read(), func(raw bson.Raw) error {
		n++
		if n%int64(size) != 0 {
			return nil
		}
		id, ok := model.IDOf(raw.Lookup(model.FieldID))
		if !ok {
			return fmt.Errorf("an _id of another type: %v", raw.Lookup(model.FieldID))
		}
		ends = append(ends, id)
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("find range ends: %w", err)
	}
	return ends, n, nil
}

// runFitted runs the server-side write pipeline of range r (pipe gives it
// for a range) bounded by the lease (runBounded). A run the server cut for
// time is run again as its two halves, each fitted the same way: ranges
// are sized to fit the lease as they run, at the cost of the cut run's
// time (MongoDB keeps the cut run's writes, DocumentDB undoes them; a
// range's run is idempotent either way).
func runFitted(ctx context.Context, cfg Config, coll *mongo.Collection, pipe func(*pipelines.Range) any, r *pipelines.Range) error {
	maxTime := lease.MaxTime(ctx)
	if cfg.maxTime != nil {
		maxTime = cfg.maxTime(ctx, r)
	}
	err := runBounded(ctx, coll, pipe(r), maxTime)
	if !servererr.IsMaxTimeExpired(err) {
		return err
	}
	lo, hi, herr := halve(ctx, cfg, r)
	if herr != nil {
		return errors.Join(err, herr)
	}
	if lo == nil {
		return fmt.Errorf("a range of one account took longer than the lease (lock.lease) allows: %w", err)
	}
	// Said at info: where it repeats, the cut runs' time is lost, and a
	// longer lease is the operator's remedy.
	cfg.Log.WithField("max_time", maxTime.Round(time.Millisecond).String()).Info("phase 2: a range took longer than the lease allows; running it in halves (a longer lock.lease spares the cut run's time)")
	if err := runFitted(ctx, cfg, coll, pipe, lo); err != nil {
		return err
	}
	return runFitted(ctx, cfg, coll, pipe, hi)
}

// runBounded runs a pipeline that writes ($merge) and returns nothing,
// bounded by the lease ctx carries: the server ends it within maxTime (0:
// none; lease.MaxTime, the rest of the lease), and it carries the lease's
// comment, so that a holder taking the lock over can end it. So nothing
// this runner started runs on once its lease is gone.
func runBounded(ctx context.Context, coll *mongo.Collection, pipe any, maxTime time.Duration) error {
	return lease.Do(ctx, func(ctx context.Context) error {
		opts := options.Aggregate().SetAllowDiskUse(true)
		if maxTime > 0 {
			opts.SetMaxTime(maxTime)
		}
		if c := lease.Comment(ctx); c != "" {
			opts.SetComment(c)
		}
		cur, err := coll.Aggregate(ctx, pipe, opts)
		if err != nil {
			return err
		}
		return cur.Close(ctx)
	})
}

// halve cuts r (nil: every account) at its middle _id; nil halves when it
// holds fewer than two accounts.
func halve(ctx context.Context, cfg Config, r *pipelines.Range) (lo, hi *pipelines.Range, err error) {
	if r == nil {
		r = &pipelines.Range{}
	}
	if r.IDs != nil { // a list: its halves, sorted as given
		if len(r.IDs) < 2 {
			return nil, nil, nil
		}
		half := len(r.IDs) / 2
		return &pipelines.Range{IDs: r.IDs[:half:half]}, &pipelines.Range{IDs: r.IDs[half:]}, nil
	}
	accounts := cfg.DB.Collection(cfg.Names.Accounts)
	filter := r.MigratedIDs()
	var mid model.ID
	err = cfg.Retry.Do(ctx, "halve a range", func(ctx context.Context) error {
		n, err := accounts.CountDocuments(ctx, filter)
		if err != nil || n < 2 {
			mid = model.ID{}
			return err
		}
		raw, err := accounts.FindOne(ctx, filter, options.FindOne().SetSort(bson.D{{Key: model.FieldID, Value: 1}}).
			SetSkip(n/2-1).SetProjection(bson.D{{Key: model.FieldID, Value: 1}})).Raw()
		if err != nil {
			return err
		}
		mid, _ = model.IDOf(raw.Lookup(model.FieldID))
		return nil
	})
	if err != nil || mid.IsZero() {
		return nil, nil, retry.Wrap("halve a range", err)
	}
	return &pipelines.Range{After: r.After, Through: mid}, &pipelines.Range{After: mid, Through: r.Through}, nil
}
