package pipelines

// MongoDB's order of BSON values, as the aggregation comparison operators
// use it ($gt in stage 7's whenMatched, the split path's refresh filter):
// the Go twins (Refresh) compare with it, so the oracle can hold the
// pipelines to them.

import (
	"bytes"
	"math"
	"math/big"
	"strings"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"
	"go.mongodb.org/mongo-driver/bson/primitive"
)

// compareValues compares two Go values as MongoDB's aggregation comparison
// does; ok false means missing.
func compareValues(a any, aOK bool, b any, bOK bool) int {
	ra, rb := rawOf(a, aOK), rawOf(b, bOK)
	return compareRaw(ra, rb)
}

// rawOf encodes a Go value as a BSON value; a missing value is the zero
// RawValue (type 0, EOO). A value the driver cannot encode compares as
// missing.
func rawOf(v any, ok bool) bson.RawValue {
	if !ok {
		return bson.RawValue{}
	}
	if v == nil {
		return bson.RawValue{Type: bsontype.Null}
	}
	t, data, err := bson.MarshalValue(v)
	if err != nil {
		return bson.RawValue{}
	}
	return bson.RawValue{Type: t, Value: data}
}

// typeRank is MongoDB's canonical order of BSON types.
func typeRank(t bsontype.Type) int {
	switch t {
	case bsontype.MinKey:
		return -1
	case 0, bsontype.Undefined: // missing
		return 0
	case bsontype.Null:
		return 5
	case bsontype.Double, bsontype.Int32, bsontype.Int64, bsontype.Decimal128:
		return 10
	case bsontype.String, bsontype.Symbol:
		return 15
	case bsontype.EmbeddedDocument:
		return 20
	case bsontype.Array:
		return 25
	case bsontype.Binary:
		return 30
	case bsontype.ObjectID:
		return 35
	case bsontype.Boolean:
		return 40
	case bsontype.DateTime:
		return 45
	case bsontype.Timestamp:
		return 47
	case bsontype.Regex:
		return 50
	case bsontype.DBPointer:
		return 55
	case bsontype.JavaScript:
		return 60
	case bsontype.CodeWithScope:
		return 65
	case bsontype.MaxKey:
		return 127
	}
	return 200
}

func sign[T int | int64 | uint64 | float64](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func compareRaw(a, b bson.RawValue) int {
	ra, rb := typeRank(a.Type), typeRank(b.Type)
	if ra != rb {
		return sign(ra, rb)
	}
	switch ra {
	case 10:
		return compareNumbers(a, b)
	case 15:
		return strings.Compare(stringOf(a), stringOf(b))
	case 20:
		return compareDocs(a.Document(), b.Document())
	case 25:
		return compareDocs(bson.Raw(a.Array()), bson.Raw(b.Array()))
	case 30:
		sa, ba := a.Binary()
		sb, bb := b.Binary()
		if c := sign(len(ba), len(bb)); c != 0 {
			return c
		}
		if c := sign(int(sa), int(sb)); c != 0 {
			return c
		}
		return bytes.Compare(ba, bb)
	case 35:
		oa, ob := a.ObjectID(), b.ObjectID()
		return bytes.Compare(oa[:], ob[:])
	case 40:
		ba, bb := a.Boolean(), b.Boolean()
		if ba == bb {
			return 0
		}
		if !ba {
			return -1
		}
		return 1
	case 45:
		return sign(a.DateTime(), b.DateTime())
	case 47:
		ta, ia := a.Timestamp()
		tb, ib := b.Timestamp()
		return sign(uint64(ta)<<32|uint64(ia), uint64(tb)<<32|uint64(ib))
	case 50:
		pa, fa := a.Regex()
		pb, fb := b.Regex()
		if c := strings.Compare(pa, pb); c != 0 {
			return c
		}
		return strings.Compare(fa, fb)
	case 60:
		return strings.Compare(a.JavaScript(), b.JavaScript())
	case 55, 65, 200:
		if c := sign(len(a.Value), len(b.Value)); c != 0 {
			return c
		}
		return bytes.Compare(a.Value, b.Value)
	}
	return 0 // minKey, missing, null, maxKey: one value each
}

func stringOf(v bson.RawValue) string {
	if v.Type == bsontype.Symbol {
		return v.Symbol()
	}
	return v.StringValue()
}

// compareDocs compares documents (and arrays, as documents keyed "0", "1",
// ...): element by element, the type rank of the values first, then the field
// names, then the values; a prefix is smaller.
func compareDocs(a, b bson.Raw) int {
	ea, errA := a.Elements()
	eb, errB := b.Elements()
	if errA != nil || errB != nil {
		return bytes.Compare(a, b)
	}
	for i := 0; i < len(ea) && i < len(eb); i++ {
		va, vb := ea[i].Value(), eb[i].Value()
		if c := sign(typeRank(va.Type), typeRank(vb.Type)); c != 0 {
			return c
		}
		if c := strings.Compare(ea[i].Key(), eb[i].Key()); c != 0 {
			return c
		}
		if c := compareRaw(va, vb); c != 0 {
			return c
		}
	}
	return sign(len(ea), len(eb))
}

// compareNumbers compares int32, int64, double and decimal128 values exactly.
func compareNumbers(a, b bson.RawValue) int {
	na, nb := numberOf(a), numberOf(b)
	// NaN is below every number and equal to itself; then -inf, finite, +inf.
	if na.nan || nb.nan {
		return sign(boolInt(!na.nan), boolInt(!nb.nan))
	}
	if na.inf != 0 || nb.inf != 0 {
		if na.inf == nb.inf {
			return 0
		}
		return sign(na.inf, nb.inf)
	}
	return na.r.Cmp(nb.r)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

type number struct {
	nan bool
	inf int // -1, 0, +1
	r   *big.Rat
}

func numberOf(v bson.RawValue) number {
	switch v.Type {
	case bsontype.Int32:
		return number{r: new(big.Rat).SetInt64(int64(v.Int32()))}
	case bsontype.Int64:
		return number{r: new(big.Rat).SetInt64(v.Int64())}
	case bsontype.Double:
		f := v.Double()
		switch {
		case math.IsNaN(f):
			return number{nan: true}
		case math.IsInf(f, 1):
			return number{inf: 1}
		case math.IsInf(f, -1):
			return number{inf: -1}
		}
		return number{r: new(big.Rat).SetFloat64(f)}
	case bsontype.Decimal128:
		return decimalNumber(v.Decimal128())
	}
	return number{nan: true}
}

func decimalNumber(x primitive.Decimal128) number {
	if x.IsNaN() {
		return number{nan: true}
	}
	if i := x.IsInf(); i != 0 {
		return number{inf: i}
	}
	mant, exp, err := x.BigInt()
	if err != nil {
		return number{nan: true}
	}
	r := new(big.Rat).SetInt(mant)
	p := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(absInt(exp))), nil)
	if exp >= 0 {
		r.Mul(r, new(big.Rat).SetInt(p))
	} else {
		r.Quo(r, new(big.Rat).SetInt(p))
	}
	return number{r: r}
}

func absInt(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
