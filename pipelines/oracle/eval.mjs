// eval.mjs: an independent oracle for the runner's aggregation pipelines.
//
// Input (stdin): one canonical Extended JSON object
//   {pipeline: [...], collections: {name: [docs...]}, source: "accounts"}
// The pipeline is evaluated with mingo on collections[source]; $lookup's
// `from` and $merge's `into` are resolved against `collections` (a missing
// collection is an empty one, as in MongoDB).
// Output (stdout): canonical Extended JSON {"docs": [...]}: the target
// collection named by a final $merge's `into` after the run (documents
// replaced by $merge are replaced in that array, inserted ones appended), or,
// for a pipeline without $merge, its results.
// Errors: one line on stderr, exit status 1.
//
// The documents of `collections` are parsed with relaxed: false, so Int32,
// Double, Long, Decimal128, Date and ObjectId values keep their BSON types
// through mingo and back out: mingo carries the bson wrapper objects as opaque
// values. The pipeline is parsed relaxed (numbers become JS numbers), since
// mingo's operators need JS numbers as operands ({$size: 0} compares with
// ===). So a pipeline that computes on numeric fields of the documents
// (arithmetic, numeric comparisons) is out of this oracle's reach; the phase-2
// pipelines only copy numbers, and compare dates and strings.
//
// mingo 7 differs from MongoDB in five places that these pipelines touch.
// The oracle corrects them here, in the engine, never in the pipeline:
//
//  1. Aggregation comparison expressions ($cmp, $eq, $ne, $gt, $gte, $lt,
//     $lte): mingo evaluates them with query semantics (type bracketing: a
//     date is not "greater" than null or a missing value; an array operand
//     matches if any element does). MongoDB compares the two values by value
//     and type in BSON order (missing = undefined < null < numbers < strings
//     < objects < arrays < binData < ObjectId < bool < date < timestamp <
//     regex ...). Replaced by bsonCompare below.
//  2. Expression objects: mingo keeps a field whose expression is missing as
//     a key holding `undefined` (MongoDB omits the field); bson's EJSON then
//     writes it as null. The stages that build documents from expressions
//     ($set, $addFields, $project, $replaceWith, $replaceRoot) are wrapped to
//     drop such keys, and turn `undefined` array elements into null (as
//     MongoDB does for a missing array element). To keep this exact, an input
//     holding a BSON undefined value is rejected.
//  3. $merge matches `on` values by a 32-bit hash of the value (of the
//     array of the values, for several fields), not by equality: two
//     different _ids with the same hash would be taken for one. The wrapped
//     $merge checks that no two different `on` values among the target and
//     the incoming documents share a hash, and fails if any do.
//  4. $toString of an ObjectId: mingo refuses an object; MongoDB gives its 24
//     lowercase hex digits (the membership id of an ObjectId _id).
//  5. The query operator {$type: "objectId"} (or 7): mingo knows no such
//     type; it matches bson's ObjectId values, as MongoDB matches ObjectIds.
//
// Known limits that the inputs must respect (checked where cheap): JavaScript
// objects put integer-like keys ("0", "12") first, so documents with such
// field names lose their field order (rejected); DBRef-shaped subdocuments
// ({$ref, $id}) are parsed as DBRef objects.

import { Aggregator } from "mingo/aggregator";
import { Context, evalExpr } from "mingo/core";
import { Lazy } from "mingo/lazy";
import { hashCode, resolve as resolvePath } from "mingo/util";
import * as accumulatorOperators from "mingo/operators/accumulator";
import * as expressionOperators from "mingo/operators/expression";
import * as pipelineOperators from "mingo/operators/pipeline";
import * as projectionOperators from "mingo/operators/projection";
import * as queryOperators from "mingo/operators/query";
import * as windowOperators from "mingo/operators/window";
import { EJSON } from "bson";

class OracleError extends Error {}

// ---------------------------------------------------------------- BSON order

const bsonType = (v) => {
  if (v === undefined) return "missing";
  if (v === null) return "null";
  switch (typeof v) {
    case "number":
    case "bigint":
      return "number";
    case "string":
      return "string";
    case "boolean":
      return "bool";
  }
  if (Array.isArray(v)) return "array";
  if (v instanceof Date) return "date";
  if (v instanceof RegExp) return "regex";
  switch (v._bsontype) {
    case "Int32":
    case "Double":
    case "Long":
    case "Decimal128":
      return "number";
    case "BSONSymbol":
      return "string";
    case "Binary":
      return "binData";
    case "ObjectId":
      return "objectId";
    case "Timestamp":
      return "timestamp";
    case "BSONRegExp":
      return "regex";
    case "Code":
      return v.scope ? "codeWithScope" : "javascript";
    case "MinKey":
      return "minKey";
    case "MaxKey":
      return "maxKey";
    case "DBRef":
      return "object";
  }
  if (Object.getPrototypeOf(v) === Object.prototype || Object.getPrototypeOf(v) === null) return "object";
  throw new OracleError(`cannot compare a value of type ${v?.constructor?.name}`);
};

// MongoDB's canonical type order (canonicalizeBSONType).
const RANK = {
  minKey: -1, missing: 0, null: 5, number: 10, string: 15, object: 20, array: 25, binData: 30,
  objectId: 35, bool: 40, date: 45, timestamp: 47, regex: 50, javascript: 60, codeWithScope: 65, maxKey: 127,
};

const sign = (a, b) => (a < b ? -1 : a > b ? 1 : 0);

// A finite number as an exact fraction p/q (BigInt, q > 0), or NaN / ±Infinity.
function toRational(v) {
  if (typeof v === "bigint") return { p: v, q: 1n };
  let x = v;
  if (typeof v === "object") {
    switch (v._bsontype) {
      case "Int32":
      case "Double":
        x = v.value;
        break;
      case "Long":
        return { p: v.toBigInt(), q: 1n };
      case "Decimal128":
        return decimalRational(v.toString());
    }
  }
  if (Number.isNaN(x)) return { nan: true };
  if (!Number.isFinite(x)) return { inf: x > 0 ? 1 : -1 };
  if (Number.isInteger(x)) return { p: BigInt(x), q: 1n };
  // An exact binary fraction: mantissa * 2^exp.
  const buf = new DataView(new ArrayBuffer(8));
  buf.setFloat64(0, x);
  const bits = buf.getBigUint64(0);
  const neg = bits >> 63n;
  const e = Number((bits >> 52n) & 0x7ffn);
  let m = bits & 0xfffffffffffffn;
  let exp;
  if (e === 0) exp = -1074;
  else {
    m |= 1n << 52n;
    exp = e - 1075;
  }
  const p = neg ? -m : m;
  return exp >= 0 ? { p: p << BigInt(exp), q: 1n } : { p, q: 1n << BigInt(-exp) };
}

function decimalRational(s) {
  if (/nan/i.test(s)) return { nan: true };
  if (/inf/i.test(s)) return { inf: s.startsWith("-") ? -1 : 1 };
  const m = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/.exec(s);
  if (!m) throw new OracleError(`cannot read decimal ${s}`);
  const digits = (m[2] || "") + (m[3] || "");
  let exp = Number(m[4] || 0) - (m[3] || "").length;
  let p = BigInt(digits || "0");
  if (m[1] === "-") p = -p;
  return exp >= 0 ? { p: p * 10n ** BigInt(exp), q: 1n } : { p, q: 10n ** BigInt(-exp) };
}

function compareNumbers(a, b) {
  const x = toRational(a), y = toRational(b);
  if (x.nan || y.nan) return sign(x.nan ? 0 : 1, y.nan ? 0 : 1); // NaN below all numbers
  if (x.inf || y.inf) return sign(x.inf || 0, y.inf || 0);
  return sign(x.p * y.q, y.p * x.q);
}

const utf8 = (s) => Buffer.from(typeof s === "string" ? s : String(s.value ?? s), "utf8");
const compareStrings = (a, b) => Buffer.compare(utf8(a), utf8(b));

function entriesOf(v) {
  if (v._bsontype === "DBRef") return Object.entries(v.toJSON());
  return Object.entries(v);
}

export function bsonCompare(a, b) {
  const ta = bsonType(a), tb = bsonType(b);
  if (RANK[ta] !== RANK[tb]) return sign(RANK[ta], RANK[tb]);
  switch (ta) {
    case "number":
      return compareNumbers(a, b);
    case "string":
      return compareStrings(a, b);
    case "object": {
      const ea = entriesOf(a), eb = entriesOf(b);
      for (let i = 0; i < ea.length && i < eb.length; i++) {
        const [ka, va] = ea[i], [kb, vb] = eb[i];
        const r = sign(RANK[bsonType(va)], RANK[bsonType(vb)]);
        if (r) return r;
        const k = compareStrings(ka, kb);
        if (k) return k;
        const c = bsonCompare(va, vb);
        if (c) return c;
      }
      return sign(ea.length, eb.length);
    }
    case "array": {
      for (let i = 0; i < a.length && i < b.length; i++) {
        const c = bsonCompare(a[i], b[i]);
        if (c) return c;
      }
      return sign(a.length, b.length);
    }
    case "binData": {
      const ba = Buffer.from(a.buffer.subarray(0, a.position)), bb = Buffer.from(b.buffer.subarray(0, b.position));
      return sign(ba.length, bb.length) || sign(a.sub_type, b.sub_type) || Buffer.compare(ba, bb);
    }
    case "objectId":
      return Buffer.compare(Buffer.from(a.id), Buffer.from(b.id));
    case "bool":
      return sign(a ? 1 : 0, b ? 1 : 0);
    case "date":
      return sign(a.getTime(), b.getTime());
    case "timestamp":
      return sign(a.t, b.t) || sign(a.i, b.i);
    case "regex": {
      const pa = a instanceof RegExp ? [a.source, a.flags] : [a.pattern, a.options];
      const pb = b instanceof RegExp ? [b.source, b.flags] : [b.pattern, b.options];
      return compareStrings(pa[0], pb[0]) || compareStrings(pa[1], pb[1]);
    }
    case "javascript":
      return compareStrings(a.code, b.code);
    case "codeWithScope":
      return compareStrings(a.code, b.code) || bsonCompare(a.scope, b.scope);
  }
  return 0; // minKey, missing, null, maxKey
}

// Aggregation comparison operators with MongoDB's semantics.
const comparison = (name, fn) => (obj, expr, options) => {
  if (!Array.isArray(expr) || expr.length !== 2) throw new OracleError(`${name} takes exactly 2 arguments`);
  const [a, b] = evalExpr(obj, expr, options);
  return fn(bsonCompare(a, b));
};
const comparisonOps = {
  $cmp: comparison("$cmp", (c) => c),
  $eq: comparison("$eq", (c) => c === 0),
  $ne: comparison("$ne", (c) => c !== 0),
  $gt: comparison("$gt", (c) => c > 0),
  $gte: comparison("$gte", (c) => c >= 0),
  $lt: comparison("$lt", (c) => c < 0),
  $lte: comparison("$lte", (c) => c <= 0),
};

// ------------------------------------------------ missing values in objects

const isPlainObject = (v) =>
  v !== null && typeof v === "object" && !Array.isArray(v) && !v._bsontype &&
  (Object.getPrototypeOf(v) === Object.prototype || Object.getPrototypeOf(v) === null);

// dropMissing returns v with keys holding undefined removed from every plain
// object and undefined array elements turned into null, copying only what
// changes.
function dropMissing(v) {
  if (Array.isArray(v)) {
    let out = v;
    for (let i = 0; i < v.length; i++) {
      const x = v[i] === undefined ? null : dropMissing(v[i]);
      if (x !== v[i]) {
        if (out === v) out = v.slice();
        out[i] = x;
      }
    }
    return out;
  }
  if (isPlainObject(v)) {
    let out = v;
    for (const k of Object.keys(v)) {
      if (v[k] === undefined) {
        if (out === v) out = { ...v };
        delete out[k];
        continue;
      }
      const x = dropMissing(v[k]);
      if (x !== v[k]) {
        if (out === v) out = { ...v };
        out[k] = x;
      }
    }
    return out;
  }
  return v;
}

const building = (op) => (coll, expr, options) => op(coll, expr, options).map(dropMissing);

// ----------------------------------------------------------------- $merge

function checkedMerge(coll, expr, options) {
  const docs = coll.collect ? coll.collect() : Array.from(coll);
  const target = options.collectionResolver(expr.into);
  const on = expr.on ?? "_id";
  const fields = Array.isArray(on) ? on : [on];
  if (fields.length === 0 || fields.some((f) => typeof f !== "string" || f.includes("."))) {
    throw new OracleError("$merge: the oracle supports top-level `on` fields only");
  }
  // The value mingo hashes: the field's, or the array of the fields' (a
  // shard key and _id).
  const onValue = (d) => (Array.isArray(on) ? fields.map((f) => d[f]) : d[on]);
  const seen = new Map(); // hash -> canonical EJSON of the value
  for (const d of [...target, ...docs]) {
    const v = onValue(d);
    const h = hashCode(v);
    const s = EJSON.stringify(v === undefined ? null : v, { relaxed: false });
    const prev = seen.get(h);
    if (prev !== undefined && prev !== s) {
      throw new OracleError(`$merge: mingo would confuse two different ${fields.join(", ")} values (same 32-bit hash)`);
    }
    seen.set(h, s);
  }
  return pipelineOperators.$merge(Lazy(docs), expr, options);
}

// ------------------------------------------------------------- ObjectIds

const isObjectId = (v) => v?._bsontype === "ObjectId";

function toStringOp(obj, expr, options) {
  const v = evalExpr(obj, expr, options);
  if (isObjectId(v)) return v.toHexString();
  return expressionOperators.$toString(obj, expr, options);
}

const objectIdType = (t) => t === "objectId" || t === 7;

// typeQuery is mingo's $type query operator plus the ObjectId type; like
// every $type, it matches an array holding a value of the type.
function typeQuery(selector, value, options) {
  const types = Array.isArray(value) ? value : [value];
  const rest = types.filter((t) => !objectIdType(t));
  const base = rest.length > 0 ? queryOperators.$type(selector, rest.length === 1 ? rest[0] : rest, options) : () => false;
  if (rest.length === types.length) return base;
  return (obj) => {
    if (base(obj)) return true;
    const v = resolvePath(obj, selector);
    return isObjectId(v) || (Array.isArray(v) && v.some(isObjectId));
  };
}

// ---------------------------------------------------------------- context

const context = Context.init({
  accumulator: { ...accumulatorOperators },
  expression: { ...expressionOperators, ...comparisonOps, $toString: toStringOp },
  pipeline: {
    ...pipelineOperators,
    $set: building(pipelineOperators.$set),
    $addFields: building(pipelineOperators.$addFields),
    $project: building(pipelineOperators.$project),
    $replaceWith: building(pipelineOperators.$replaceWith),
    $replaceRoot: building(pipelineOperators.$replaceRoot),
    $merge: checkedMerge,
  },
  projection: { ...projectionOperators },
  query: { ...queryOperators, $type: typeQuery },
  window: { ...windowOperators },
});

// ------------------------------------------------------------------- input

function checkInput(v, path) {
  if (v === undefined) throw new OracleError(`input holds a BSON undefined at ${path}: the oracle cannot tell it from a missing value`);
  if (Array.isArray(v)) {
    v.forEach((x, i) => checkInput(x, `${path}.${i}`));
  } else if (isPlainObject(v)) {
    for (const k of Object.keys(v)) {
      if (/^(0|[1-9]\d*)$/.test(k)) throw new OracleError(`input has an integer-like field name at ${path}: JavaScript would reorder it`);
      checkInput(v[k], `${path}.${k}`);
    }
  }
}

function checkOutput(v, path) {
  if (v === undefined) throw new OracleError(`output holds undefined at ${path}`);
  if (Array.isArray(v)) v.forEach((x, i) => checkOutput(x, `${path}.${i}`));
  else if (isPlainObject(v)) for (const k of Object.keys(v)) checkOutput(v[k], `${path}.${k}`);
}

async function readStdin() {
  const chunks = [];
  for await (const c of process.stdin) chunks.push(c);
  return Buffer.concat(chunks).toString("utf8");
}

async function main() {
  const text = await readStdin();
  let raw;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new OracleError(`input is not JSON: ${err.message}`);
  }
  if (!isPlainObject(raw)) throw new OracleError("input must be a JSON object");
  // The pipeline relaxed (its numbers become JS numbers, which mingo's
  // operators need: {$size: 0}, {$arrayElemAt: [..., 0]}), the documents
  // canonical (their numbers keep their BSON types).
  const { pipeline } = EJSON.deserialize({ pipeline: raw.pipeline ?? null }, { relaxed: true });
  const { collections } = EJSON.deserialize({ collections: raw.collections ?? null }, { relaxed: false });
  const { source } = raw;
  if (!Array.isArray(pipeline)) throw new OracleError("input: pipeline must be an array");
  if (!isPlainObject(collections)) throw new OracleError("input: collections must be an object");
  if (typeof source !== "string") throw new OracleError("input: source must be a string");
  for (const [name, docs] of Object.entries(collections)) {
    if (!Array.isArray(docs)) throw new OracleError(`input: collection ${name} must be an array`);
    docs.forEach((doc, i) => checkInput(doc, `${name}.${i}`));
  }
  const resolve = (name) => {
    if (typeof name !== "string") throw new OracleError("only named collections are supported");
    if (!Object.hasOwn(collections, name)) collections[name] = [];
    return collections[name];
  };

  const last = pipeline[pipeline.length - 1];
  const into = last && Object.hasOwn(last, "$merge") ? last.$merge.into : undefined;
  const agg = new Aggregator(pipeline, { context, collectionResolver: resolve });
  const results = agg.run(resolve(source));
  const docs = into === undefined ? results : resolve(into);
  checkOutput(docs, into ?? "results");
  process.stdout.write(EJSON.stringify({ docs }, { relaxed: false }) + "\n");
}

main().catch((err) => {
  const msg = String(err?.message ?? err).split("\n")[0];
  process.stderr.write(`oracle: ${msg}\n`);
  process.exit(1);
});
