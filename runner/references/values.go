package references

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/tenantmigrate/runner/model"
	"github.com/tenantmigrate/runner/runner/internal/writes"
	"github.com/tenantmigrate/runner/runner/retry"
)

func docValue(d bson.D, key string) any {
	v, _ := model.Get(d, key)
	return v
}

// encoded is v as BSON bytes with its type, equal for equal values (field
// order included, as the server compares them).
func encoded(v any) []byte {
	t, b, err := bson.MarshalValue(v)
	if err != nil {
		return []byte(fmt.Sprintf("unencodable %T", v))
	}
	return append([]byte{byte(t)}, b...)
}

func sameValue(a, b any) bool { return bytes.Equal(encoded(a), encoded(b)) }

// holds: every field of want has its value in d.
func holds(d, want bson.D) bool {
	for _, e := range want {
		v, ok := model.Get(d, e.Key)
		if !ok || !sameValue(v, e.Value) {
			return false
		}
	}
	return true
}

// idKey is a document _id of any type as a map key.
func idKey(id any) string { return string(encoded(id)) }

// idText is a document _id as text for a report: a string as it is, an
// ObjectId in hex, any other as extended JSON.
func idText(id any) string {
	switch x := id.(type) {
	case string:
		return x
	case primitive.ObjectID:
		return x.Hex()
	}
	b, err := bson.MarshalExtJSON(bson.D{{Key: "v", Value: id}}, false, false)
	if err != nil {
		return fmt.Sprintf("%v", id)
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) != nil {
		return string(b)
	}
	return string(m["v"])
}

// bulkChunk is the most statements one bulk write of this package sends.
// FerretDB 1 keeps each statement's cursor open until the end of its
// update command, out of a pool of 100 SQLite connections: a command of
// 100 conditional updates waits for ever.
const bulkChunk = 50

// bulk writes models unordered in chunks of bulkChunk, each retried within
// p, and returns how many documents they modified. Write errors of every
// chunk come back as one BulkWriteException whose indexes are into models;
// any other error stops at its chunk.
func bulk(ctx context.Context, p *retry.Policy, coll *mongo.Collection, models []mongo.WriteModel) (int64, error) {
	var failed mongo.BulkWriteException
	var modified int64
	for start := 0; start < len(models); start += bulkChunk {
		end := min(start+bulkChunk, len(models))
		res, err := writes.BulkWrite(ctx, p, coll, models[start:end])
		if res != nil {
			modified += res.ModifiedCount
		}
		var bwe mongo.BulkWriteException
		switch {
		case err == nil:
		case errors.As(err, &bwe) && bwe.WriteConcernError == nil && len(bwe.WriteErrors) > 0:
			for _, we := range bwe.WriteErrors {
				we.Index += start
				failed.WriteErrors = append(failed.WriteErrors, we)
			}
		default:
			return modified, err
		}
	}
	if len(failed.WriteErrors) > 0 {
		return modified, failed
	}
	return modified, nil
}
