// Package config loads the runner's configuration with viper: defaults, then
// a YAML file, then RUNNER_* environment variables, then command-line flags.
// Unknown keys and bad values are rejected with one line naming the key.
package config

import (
	"encoding"
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/tenantmigrate/runner/model"
	"github.com/tenantmigrate/runner/runner/catchup"
	"github.com/tenantmigrate/runner/runner/internal/refusal"
	"github.com/tenantmigrate/runner/runner/phase1"
	"github.com/tenantmigrate/runner/runner/phase2"
	"github.com/tenantmigrate/runner/runner/references"
	"github.com/tenantmigrate/runner/runner/step"
)

// EnvPrefix prefixes every environment variable the runner reads:
// mongodb.uri is RUNNER_MONGODB_URI, lock.lease is RUNNER_LOCK_LEASE.
const EnvPrefix = "RUNNER"

// Config is the whole configuration. The zero value is not usable: start
// from Default() or Load.
type Config struct {
	MongoDB     MongoDB     `mapstructure:"mongodb"`
	Collections Collections `mapstructure:"collections"`
	BatchSize   int         `mapstructure:"batch_size"`
	SkipInvalid bool        `mapstructure:"skip_invalid"`
	// NewInstall lets the database have no legacy accounts collection:
	// without it, such a database is refused (a wrong mongodb.database is
	// likelier than a new install).
	NewInstall bool `mapstructure:"new_install"`
	// Tenants describes the target collection as the operator made it.
	Tenants Tenants `mapstructure:"tenants"`
	// Each Go step's own section, typed and checked by its package.
	Identity phase1.IdentityOptions `mapstructure:"identity"`
	Phase1   phase1.Options         `mapstructure:"phase1"`
	Phase2   phase2.Options         `mapstructure:"phase2"`
	CatchUp  catchup.Options        `mapstructure:"catchup"`
	Verify   Verify                 `mapstructure:"verify"`
	Lock     Lock                   `mapstructure:"lock"`
	Retry    Retry                  `mapstructure:"retry"`
	Boot     Boot                   `mapstructure:"boot"`
	Log      Log                    `mapstructure:"log"`
	// References are fields of the service's other collections that hold a
	// legacy account _id, each "collection:dotted.path" (the path goes
	// through subdocuments and arrays; references.Parse). The references
	// step re-points those naming an account phase 1 merged away to its
	// tenant account.
	References []string `mapstructure:"references"`
}

// MongoDB says where the data lives.
type MongoDB struct {
	URI            string        `mapstructure:"uri"`
	Database       string        `mapstructure:"database"`
	ConnectTimeout time.Duration `mapstructure:"connect_timeout"`
}

// Collections names every collection the runner reads or writes: the
// data model's (model.Names, keys collections.accounts, ...) and its own.
type Collections struct {
	model.Names `mapstructure:",squash"`
	// MigrationsPrefix prefixes the runner's own bookkeeping collections
	// (mongomigrate.Store) and its scratch collections.
	MigrationsPrefix string `mapstructure:"migrations_prefix"`
}

// Tenants describes the tenant accounts' collection as the operator made
// it before the migration.
type Tenants struct {
	// ShardKey is its shard key (tenants.shard_key): empty when it is not
	// sharded. It must agree with the cluster, which the runner checks.
	ShardKey model.ShardKey `mapstructure:"shard_key"`
}

// Verify configures the automatic reconciliation.
type Verify struct {
	// AfterSteps runs verify at the end of every run that applied or re-ran
	// a step (runner, runner --phase N, and at boot); a mismatch fails the run.
	AfterSteps bool `mapstructure:"after_steps"`
}

// Lock configures the lease lock that serialises runners.
type Lock struct {
	// Lease is how long a holder owns the lock without renewing it; a
	// killed holder blocks others for at most this long.
	Lease time.Duration `mapstructure:"lease"`
	// Heartbeat is how often a holder renews its lease; below Lease/2.
	Heartbeat time.Duration `mapstructure:"heartbeat"`
	// Wait is how long a runner waits for another holder before giving up.
	Wait time.Duration `mapstructure:"wait"`
}

// Retry bounds the retries of transient errors (a connection reset, a
// primary stepping down, a write-concern timeout): each batch of writes,
// each server-side range and each broken cursor is tried again with capped
// exponential backoff until it passes or its budget is spent.
type Retry struct {
	// Attempts is how many times one operation is tried in all (1: never
	// retry).
	Attempts int `mapstructure:"attempts"`
	// MaxElapsed bounds the time from one operation's first failure to its
	// last retry.
	MaxElapsed time.Duration `mapstructure:"max_elapsed"`
	// InitialWait is the first wait; each next doubles, up to MaxWait.
	InitialWait time.Duration `mapstructure:"initial_wait"`
	MaxWait     time.Duration `mapstructure:"max_wait"`
}

// Boot says what a service does when its boot migration cannot finish.
type Boot struct {
	OnFailure OnFailure `mapstructure:"on_failure"`
	OnDirty   OnDirty   `mapstructure:"on_dirty"`
	// CatchUp carries the legacy changes since the last catch-up into the
	// tenant accounts at every boot once the steps are applied, until
	// cutover (runner/catchup).
	CatchUp bool `mapstructure:"catch_up"`
}

// OnFailure is what Boot does when a step fails (boot.on_failure).
type OnFailure string

const (
	// FailureFail: Boot returns the error; the service should exit.
	FailureFail OnFailure = "fail"
	// FailureContinue: Boot logs it, keeps the status record and returns
	// no error, so the service can serve.
	FailureContinue OnFailure = "continue"
)

func (o OnFailure) String() string { return string(o) }

// OnDirty is what a runner does with a step a dead or failed runner left
// half done (boot.on_dirty).
type OnDirty string

const (
	// DirtyResume: run the step again (every step is idempotent).
	DirtyResume OnDirty = "resume"
	// DirtyFail: refuse until an operator looks.
	DirtyFail OnDirty = "fail"
)

func (o OnDirty) String() string { return string(o) }

// Log configures logrus.
type Log struct {
	// Format is "auto" (text on a terminal, JSON otherwise), "text" or "json".
	Format string `mapstructure:"format"`
	Level  string `mapstructure:"level"`
}

// Default returns the built-in defaults; config.yaml documents the same values.
func Default() Config {
	return Config{
		MongoDB: MongoDB{
			URI:            "mongodb://127.0.0.1:27017",
			Database:       "core",
			ConnectTimeout: 10 * time.Second,
		},
		Collections: Collections{Names: model.DefaultNames(), MigrationsPrefix: "migrations"},
		Identity:    phase1.DefaultIdentityOptions(),
		BatchSize:   step.DefaultBatch,
		Phase1:      phase1.DefaultOptions(),
		Phase2:      phase2.DefaultOptions(),
		CatchUp:     catchup.DefaultOptions(),
		Verify:      Verify{AfterSteps: true},
		Lock:        Lock{Lease: 30 * time.Second, Heartbeat: 10 * time.Second, Wait: 5 * time.Minute},
		Retry:       Retry{Attempts: 8, MaxElapsed: 2 * time.Minute, InitialWait: 200 * time.Millisecond, MaxWait: 15 * time.Second},
		Boot:        Boot{OnFailure: FailureFail, OnDirty: DirtyResume, CatchUp: true},
		Log:         Log{Format: "auto", Level: "info"},
		References:  []string{},
	}
}

// ParsedReferences are the references, validated.
func (c Config) ParsedReferences() ([]references.Ref, error) {
	refs, err := references.Parse(c.References, c.Collections.Names, c.Collections.MigrationsPrefix)
	return refs, optionError(err)
}

// optionError is a step's error about one of its options as a
// configuration error.
func optionError(err error) error {
	var oe *step.OptionError
	if errors.As(err, &oe) {
		return &Error{Key: oe.Key, Msg: oe.Msg}
	}
	return err
}

// Error is a configuration error about one key.
type Error struct {
	Key string
	Msg string
}

func (e *Error) Error() string {
	if e.Key == "" {
		return "config: " + e.Msg
	}
	return fmt.Sprintf("config: %s: %s", e.Key, e.Msg)
}

// Flags are the command-line flags that override configuration keys.
var flagKeys = map[string]string{
	"skip-invalid": "skip_invalid",
	"uri":          "mongodb.uri",
	"database":     "mongodb.database",
	"log-level":    "log.level",
	"log-format":   "log.format",
}

// AddFlags registers the flags that override configuration keys on fs.
func AddFlags(fs *pflag.FlagSet) {
	fs.String("config", "", "configuration file (default: ./config.yaml if present)")
	fs.String("uri", "", "MongoDB URI (overrides mongodb.uri)")
	fs.String("database", "", "database name (overrides mongodb.database)")
	fs.String("log-level", "", "log level: debug, info, warn, error (overrides log.level)")
	fs.String("log-format", "", "log format: auto, text, json (overrides log.format)")
	fs.Bool("skip-invalid", false, "migrate around legacy accounts that cannot be migrated, listing them (overrides skip_invalid)")
}

// Load reads the configuration: defaults, then the file (path, or
// ./config.yaml when path is empty and it exists), then RUNNER_*
// environment variables, then the flags of fs that were set (fs may be nil).
func Load(path string, fs *pflag.FlagSet) (Config, error) {
	return load(path, fs, os.Environ())
}

func load(path string, fs *pflag.FlagSet, environ []string) (Config, error) {
	v := viper.New()
	known := map[string]bool{}
	for k, val := range flatten(Default()) {
		v.SetDefault(k, val)
		known[k] = true
	}

	if path == "" {
		if _, err := os.Stat("config.yaml"); err == nil {
			path = "config.yaml"
		}
	}
	if path != "" {
		v.SetConfigFile(path)
		v.SetConfigType("yaml")
		if err := v.ReadInConfig(); err != nil {
			return Config{}, &Error{Msg: fmt.Sprintf("cannot read %s: %s", path, refusal.Flat(err.Error()))}
		}
		for _, k := range v.AllKeys() {
			if !known[k] {
				return Config{}, unknownKey(k, known, path)
			}
		}
	}

	// Environment variables are applied by hand, not with AutomaticEnv, so
	// that an unknown RUNNER_* variable is an error and not silently unused.
	envKey := map[string]string{}
	for k := range known {
		envKey[EnvPrefix+"_"+strings.ToUpper(strings.ReplaceAll(k, ".", "_"))] = k
	}
	for _, kv := range environ {
		name, val, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, EnvPrefix+"_") {
			continue
		}
		k, ok := envKey[name]
		if !ok {
			return Config{}, &Error{Key: name, Msg: "unknown environment variable"}
		}
		v.Set(k, val)
	}

	if fs != nil {
		for flag, key := range flagKeys {
			if f := fs.Lookup(flag); f != nil && f.Changed {
				v.Set(key, f.Value.String())
			}
		}
	}

	var cfg Config
	// Decoding field by field gives an error that names the key.
	for _, k := range sortedKeys(known) {
		if err := decodeKey(v, k, &cfg); err != nil {
			return Config{}, err
		}
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// unknownKey is the error for a key of the file that is not one of the
// configuration's: a section given a value, or a value given a section,
// is a wrong type, not an unknown name.
func unknownKey(k string, known map[string]bool, path string) error {
	var under []string
	for _, kk := range sortedKeys(known) {
		if strings.HasPrefix(kk, k+".") {
			under = append(under, strings.TrimPrefix(kk, k+"."))
		}
	}
	if len(under) > 0 {
		return &Error{Key: k, Msg: fmt.Sprintf("must be a section (with %s), not a value, in %s", strings.Join(under, ", "), path)}
	}
	for parent := k; strings.Contains(parent, "."); {
		parent = parent[:strings.LastIndex(parent, ".")]
		if known[parent] {
			return &Error{Key: parent, Msg: "must be a value, not a section, in " + path}
		}
	}
	return &Error{Key: k, Msg: "unknown key in " + path}
}

func decodeKey(v *viper.Viper, key string, cfg *Config) error {
	field := fieldByKey(reflect.ValueOf(cfg).Elem(), strings.Split(key, "."))
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		DecodeHook: mapstructure.ComposeDecodeHookFunc(
			mapstructure.StringToTimeDurationHookFunc(),
			namesOnly,
			mapstructure.TextUnmarshallerHookFunc(),
			mapstructure.StringToSliceHookFunc(","),
		),
		WeaklyTypedInput: true,
		Result:           field.Addr().Interface(),
	})
	if err != nil {
		return &Error{Key: key, Msg: err.Error()}
	}
	raw := v.Get(key)
	if err := dec.Decode(raw); err != nil {
		msg := fmt.Sprintf("bad value %q", fmt.Sprint(raw))
		// A typed value (an enum) says itself what it wants.
		if u, ok := field.Addr().Interface().(encoding.TextUnmarshaler); ok {
			if uerr := u.UnmarshalText([]byte(fmt.Sprint(raw))); uerr != nil {
				msg = uerr.Error()
			}
		}
		return &Error{Key: key, Msg: msg}
	}
	return nil
}

// namesOnly refuses a value of a typed name (an enum such as phase2.path)
// given as anything but its name: weakly typed, a YAML 1 or true would
// become the enum's second value.
func namesOnly(from, to reflect.Type, data any) (any, error) {
	if from != to && from.Kind() != reflect.String && reflect.PointerTo(to).Implements(textUnmarshaler) {
		return nil, errors.New("want a name")
	}
	return data, nil
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

func fieldByKey(v reflect.Value, path []string) reflect.Value {
	f, ok := findField(v, path)
	if !ok {
		panic("config: no field for key " + strings.Join(path, "."))
	}
	return f
}

// squash is the tag of an embedded struct whose keys are its parent's.
const squash = ",squash"

func findField(v reflect.Value, path []string) (reflect.Value, bool) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		switch tag := t.Field(i).Tag.Get("mapstructure"); {
		case tag == squash:
			if f, ok := findField(v.Field(i), path); ok {
				return f, true
			}
		case tag == path[0] && len(path) == 1:
			return v.Field(i), true
		case tag == path[0]:
			return findField(v.Field(i), path[1:])
		}
	}
	return reflect.Value{}, false
}

// flatten lists every leaf key of c with its value, by mapstructure tag.
func flatten(c Config) map[string]any {
	out := map[string]any{}
	var walk func(prefix string, v reflect.Value)
	walk = func(prefix string, v reflect.Value) {
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			tag := t.Field(i).Tag.Get("mapstructure")
			if tag == squash {
				walk(prefix, v.Field(i))
				continue
			}
			name := prefix + tag
			if v.Field(i).Kind() == reflect.Struct {
				walk(name+".", v.Field(i))
				continue
			}
			out[name] = v.Field(i).Interface()
		}
	}
	walk("", reflect.ValueOf(c))
	return out
}

func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

var (
	dbNameRE = regexp.MustCompile(`^[^/\\. "$*<>:|?]{1,63}$`)
)

// Validate checks every value; the error names the first bad key.
func (c Config) Validate() error {
	switch {
	case !strings.HasPrefix(c.MongoDB.URI, "mongodb://") && !strings.HasPrefix(c.MongoDB.URI, "mongodb+srv://"):
		return &Error{Key: "mongodb.uri", Msg: "must start with mongodb:// or mongodb+srv://"}
	case !dbNameRE.MatchString(c.MongoDB.Database):
		return &Error{Key: "mongodb.database", Msg: fmt.Sprintf("%q is not a valid database name", c.MongoDB.Database)}
	case c.MongoDB.ConnectTimeout <= 0:
		return &Error{Key: "mongodb.connect_timeout", Msg: "must be positive"}
	}
	colls := map[string]string{
		"collections.accounts":                   c.Collections.Accounts,
		"collections.tenants_accounts":           c.Collections.TenantsAccounts,
		"collections.applications_organizations": c.Collections.ApplicationsOrganizations,
		"collections.links":                      c.Collections.Links,
		"collections.migrations_prefix":          c.Collections.MigrationsPrefix,
	}
	seen := map[string]string{}
	for _, key := range sortedKeysOf(colls) {
		name := colls[key]
		if !model.ValidCollectionName(name) {
			return &Error{Key: key, Msg: fmt.Sprintf("%q is not a valid collection name", name)}
		}
		if other, dup := seen[name]; dup {
			return &Error{Key: key, Msg: fmt.Sprintf("%q is already used by %s", name, other)}
		}
		seen[name] = key
	}
	if _, err := c.ParsedReferences(); err != nil {
		return err
	}
	if c.BatchSize < 1 || c.BatchSize > 100000 {
		return &Error{Key: "batch_size", Msg: fmt.Sprintf("%d is out of range 1..100000", c.BatchSize)}
	}
	// A step's section validates itself, naming its key.
	sections := reflect.ValueOf(c)
	for i := range sections.NumField() {
		if v, ok := sections.Field(i).Interface().(interface{ Validate() error }); ok {
			if err := v.Validate(); err != nil {
				return optionError(err)
			}
		}
	}
	switch {
	case c.Lock.Lease < time.Second:
		return &Error{Key: "lock.lease", Msg: "must be at least 1s"}
	case c.Lock.Heartbeat <= 0 || c.Lock.Heartbeat*2 > c.Lock.Lease:
		return &Error{Key: "lock.heartbeat", Msg: fmt.Sprintf("must be positive and at most half of lock.lease (%s)", c.Lock.Lease)}
	case c.Lock.Wait < 0:
		return &Error{Key: "lock.wait", Msg: "must not be negative"}
	case c.Retry.Attempts < 1 || c.Retry.Attempts > 1000:
		return &Error{Key: "retry.attempts", Msg: fmt.Sprintf("%d is out of range 1..1000", c.Retry.Attempts)}
	case c.Retry.MaxElapsed < 0:
		return &Error{Key: "retry.max_elapsed", Msg: "must not be negative"}
	case c.Retry.InitialWait <= 0:
		return &Error{Key: "retry.initial_wait", Msg: "must be positive"}
	case c.Retry.MaxWait < c.Retry.InitialWait:
		return &Error{Key: "retry.max_wait", Msg: fmt.Sprintf("must be at least retry.initial_wait (%s)", c.Retry.InitialWait)}
	case c.Boot.OnFailure != FailureFail && c.Boot.OnFailure != FailureContinue:
		return &Error{Key: "boot.on_failure", Msg: fmt.Sprintf("%q: want fail or continue", c.Boot.OnFailure)}
	case c.Boot.OnDirty != DirtyResume && c.Boot.OnDirty != DirtyFail:
		return &Error{Key: "boot.on_dirty", Msg: fmt.Sprintf("%q: want resume or fail", c.Boot.OnDirty)}
	case c.Log.Format != "auto" && c.Log.Format != "text" && c.Log.Format != "json":
		return &Error{Key: "log.format", Msg: fmt.Sprintf("%q: want auto, text or json", c.Log.Format)}
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return &Error{Key: "log.level", Msg: fmt.Sprintf("%q: want debug, info, warn or error", c.Log.Level)}
	}
	return nil
}

func sortedKeysOf(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// IsError reports whether err is a configuration error.
func IsError(err error) bool {
	var e *Error
	return errors.As(err, &e)
}
