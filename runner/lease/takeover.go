package lease

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	"go.mongodb.org/mongo-driver/bson"
)

// DefaultGrace is Options.Grace's default.
const DefaultGrace = 2 * time.Second

// Takeover is what a new holder did about the operations of the holder
// before it, which did not release the lock (it was killed, paused or cut
// off). Its operations were bounded by its lease; the ones the server still
// lists with its comment are ended (killOp), and the holder waits until its
// lease plus a grace has passed for any the server does not list.
type Takeover struct {
	Previous string        // the previous holder's owner
	Killed   int           // its operations ended with killOp
	Waited   time.Duration // how long the new holder waited for the rest
	// Listed: the server listed its operations ($currentOp); if not, only
	// the wait bounds them.
	Listed bool
}

func (t *Takeover) String() string {
	listed := "the server lists no operations ($currentOp refused), so they were waited out"
	if t.Listed {
		listed = fmt.Sprintf("%d still running on the server ended (killOp)", t.Killed)
	}
	return fmt.Sprintf("took over from %s, which did not release the lock: its operations were bounded by its lease; %s; waited %s for its lease and a grace to pass",
		t.Previous, listed, t.Waited.Round(time.Millisecond))
}

// endPrevious makes sure no operation of prev (and of any holder before
// it) can still run before this holder writes.
func endPrevious(ctx context.Context, opts Options, prev *Holder) *Takeover {
	t := &Takeover{Previous: prev.Owner}
	t.Killed, t.Listed = killTagged(ctx, opts, prev)
	if wait := prev.ExpiresAt.Add(opts.Grace).Sub(opts.Now()); wait > 0 {
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		t.Waited = wait
	}
	opts.Log.WithFields(logrus.Fields{"previous": prev.Owner, "killed": t.Killed, "listed": t.Listed, "waited": t.Waited.Round(time.Millisecond).String()}).
		Info("took over the migration lock from a holder that did not release it")
	return t
}

// killTagged ends the operations whose comment names a holding of this lock
// older than prev's successor; false when the server does not list
// operations. A failure to list or to kill is not an error: the wait still
// bounds them.
func killTagged(ctx context.Context, opts Options, prev *Holder) (int, bool) {
	admin := opts.Coll.Database().Client().Database("admin")
	cur, err := admin.Aggregate(ctx, bson.A{
		bson.D{{Key: "$currentOp", Value: bson.D{{Key: "allUsers", Value: true}}}},
		bson.D{{Key: "$match", Value: bson.D{{Key: "command.comment", Value: bson.D{{Key: "$exists", Value: true}}}}}},
		bson.D{{Key: "$project", Value: bson.D{{Key: "opid", Value: 1}, {Key: "command.comment", Value: 1}}}},
	})
	if err != nil {
		return 0, false
	}
	defer cur.Close(ctx)
	prefix := comment(opts.Name + "#")
	mine := comment(DocID(opts.Name, prev.Gen+1))
	killed := 0
	for cur.Next(ctx) {
		var op struct {
			OpID    any `bson:"opid"`
			Command struct {
				Comment string `bson:"comment"`
			} `bson:"command"`
		}
		if cur.Decode(&op) != nil || !strings.HasPrefix(op.Command.Comment, prefix) || op.Command.Comment >= mine {
			continue
		}
		if admin.RunCommand(ctx, bson.D{{Key: "killOp", Value: 1}, {Key: "op", Value: op.OpID}}).Err() == nil {
			killed++
		}
	}
	return killed, true
}
