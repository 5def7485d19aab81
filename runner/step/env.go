package step

import (
	"context"
	"io"

	"github.com/sirupsen/logrus"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/tenantmigrate/runner/model"
	"github.com/tenantmigrate/runner/runner/capability"
	"github.com/tenantmigrate/runner/runner/mongomigrate"
	"github.com/tenantmigrate/runner/runner/progress"
	"github.com/tenantmigrate/runner/runner/retry"
)

// DefaultBatch is how many documents a step reads or writes per round
// trip when Env.Batch is not set (the configuration's batch_size default).
const DefaultBatch = 1000

// Env is what every step runs with, built once from the configuration
// (the runner's New) and handed to each step as is.
type Env struct {
	DB *mongo.Database
	// Names are the collections of the data model.
	model.Names
	// Store keeps the steps' checkpoints and records.
	Store Store
	// Retry is the budget of every read and write against transient
	// errors; the zero value tries once.
	Retry retry.Policy
	Log   logrus.FieldLogger
	// Progress shows long work.
	Progress progress.Reporter
	// Batch is how many documents go per round trip.
	Batch int
	// ScratchPrefix starts the names of the scratch collections steps and
	// probes make and drop.
	ScratchPrefix string
	// Caps is what the server is, probed once.
	Caps capability.Caps
	// SkipInvalid migrates around legacy accounts that cannot be migrated
	// instead of stopping; they stay listed, not migrated.
	SkipInvalid bool
	// ShardKey is the tenant accounts' (tenants.shard_key): every write to
	// them carries it in its filter (model.ShardKey.Filter).
	ShardKey model.ShardKey
}

// Store keeps the steps' own bookkeeping in the database
// (mongomigrate.Store): small values by key (a checkpoint of where a run
// that did not finish got to, what a step created) and, for a step with
// many, a collection of records (what it changed, for its down). Keys and
// record collections are the step's name and a suffix.
type Store interface {
	// Load decodes into v the value under key; false when there is none.
	Load(ctx context.Context, key string, v any) (bool, error)
	// Save stores v under key.
	Save(ctx context.Context, key string, v any) error
	// Clear removes the value under key.
	Clear(ctx context.Context, key string) error
	// Records is the collection of the records of the step called name.
	Records(name string) string
}

// WithDefaults fills what a caller left unset, the one place defaults of
// the environment are applied: the batch size, a logger that discards,
// progress that shows nothing. It also binds a store that retries
// (mongomigrate.Store) to Retry, so that its retries count with the run's.
func (e Env) WithDefaults() Env {
	if s, ok := e.Store.(*mongomigrate.Store); ok {
		e.Store = s.WithRetry(e.Retry)
	}
	if e.Batch <= 0 {
		e.Batch = DefaultBatch
	}
	if e.Log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		e.Log = l
	}
	if e.Progress == nil {
		e.Progress = progress.Discard{}
	}
	return e
}

// Estimate is coll's document count when the server knows it cheaply
// (MongoDB's collection metadata), else 0: FerretDB counts with a full
// scan. For progress totals only.
func (e Env) Estimate(ctx context.Context, coll string) int64 {
	if e.Caps.Server != capability.MongoDB {
		return 0
	}
	n, err := e.DB.Collection(coll).EstimatedDocumentCount(ctx)
	if err != nil {
		return 0
	}
	return n
}
