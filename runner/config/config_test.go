package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/tenantmigrate/runner/runner/phase1"
	"github.com/tenantmigrate/runner/runner/references"
)

// The shipped config.yaml documents the built-in defaults: it must say the same.
func TestShippedConfigEqualsDefaults(t *testing.T) {
	cfg, err := load(filepath.Join("..", "..", "config.yaml"), nil, nil)
	if err != nil {
		t.Fatalf("config.yaml: %v", err)
	}
	if !reflect.DeepEqual(cfg, Default()) {
		t.Errorf("config.yaml = %+v\nDefault()  = %+v", cfg, Default())
	}
}

func writeFile(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoad(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		env     []string
		flags   []string
		check   func(Config) bool
		wantKey string // error naming this key; "" for success
		wantMsg string // and saying this, if set
	}{
		{name: "file overrides default", file: "lock:\n  lease: 1m\n  heartbeat: 20s\n",
			check: func(c Config) bool { return c.Lock.Lease == time.Minute && c.Lock.Wait == 5*time.Minute }},
		{name: "env overrides file", file: "mongodb:\n  database: fromfile\n", env: []string{"RUNNER_MONGODB_DATABASE=fromenv"},
			check: func(c Config) bool { return c.MongoDB.Database == "fromenv" }},
		{name: "flag overrides env", env: []string{"RUNNER_MONGODB_URI=mongodb://env:1"}, flags: []string{"--uri", "mongodb://flag:2"},
			check: func(c Config) bool { return c.MongoDB.URI == "mongodb://flag:2" }},
		{name: "list from env", env: []string{"RUNNER_IDENTITY_AUTH_TYPE_CODES=email,phone"},
			check: func(c Config) bool { return reflect.DeepEqual(c.Identity.AuthTypeCodes, []string{"email", "phone"}) }},
		{name: "int from env", env: []string{"RUNNER_BATCH_SIZE=250"},
			check: func(c Config) bool { return c.BatchSize == 250 }},
		{name: "unknown key", file: "lock:\n  leese: 1m\n", wantKey: "lock.leese"},
		{name: "unknown top-level key", file: "colections:\n  accounts: x\n", wantKey: "colections.accounts", wantMsg: "unknown key"},
		{name: "a section given a list", file: "mongodb: [1, 2]\n", wantKey: "mongodb", wantMsg: "must be a section (with connect_timeout, database, uri), not a value"},
		{name: "a value given a section", file: "batch_size:\n  n: 1\n", wantKey: "batch_size", wantMsg: "must be a value, not a section"},
		{name: "unknown env", env: []string{"RUNNER_LOCK_LEESE=1m"}, wantKey: "RUNNER_LOCK_LEESE"},
		{name: "bad duration", file: "lock:\n  lease: soon\n", wantKey: "lock.lease"},
		{name: "bad int", env: []string{"RUNNER_BATCH_SIZE=many"}, wantKey: "batch_size"},
		{name: "batch out of range", file: "batch_size: 0\n", wantKey: "batch_size"},
		{name: "grouping limit from env", env: []string{"RUNNER_PHASE1_MEMORY_GROUP_LIMIT=50000"},
			check: func(c Config) bool { return c.Phase1.MemoryGroupLimit == 50000 }},
		{name: "negative grouping limit", file: "phase1:\n  memory_group_limit: -1\n", wantKey: "phase1.memory_group_limit"},
		{name: "phase 1 path from env", env: []string{"RUNNER_PHASE1_PATH=stream"},
			check: func(c Config) bool {
				return c.Phase1.Path == phase1.PathStream && c.Phase1.MemoryGroupLimit == 1_000_000
			}},
		{name: "phase 2 parallel by default", check: func(c Config) bool { return c.Phase2.Parallel == 2 && c.Phase2.RangeSize == 0 }},
		{name: "phase 2 parallel from env", env: []string{"RUNNER_PHASE2_PARALLEL=4"},
			check: func(c Config) bool { return c.Phase2.Parallel == 4 }},
		{name: "phase 2 parallel out of range", file: "phase2:\n  parallel: 0\n", wantKey: "phase2.parallel"},
		{name: "bad phase 1 path", file: "phase1:\n  path: fast\n", wantKey: "phase1.path"},
		{name: "phase 2 path as a number", file: "phase2:\n  path: 1\n", wantKey: "phase2.path"},
		{name: "phase 1 path as a boolean", file: "phase1:\n  path: true\n", wantKey: "phase1.path"},
		{name: "phase 2 path out of range", env: []string{"RUNNER_PHASE2_PATH=9"}, wantKey: "phase2.path"},
		{name: "server path without memory", file: "phase1:\n  path: server\n  memory_group_limit: 0\n", wantKey: "phase1.path"},
		{name: "bad enum", file: "boot:\n  on_failure: ignore\n", wantKey: "boot.on_failure"},
		{name: "bad log level", flags: []string{"--log-level", "loud"}, wantKey: "log.level"},
		{name: "bad uri", flags: []string{"--uri", "http://x"}, wantKey: "mongodb.uri"},
		{name: "heartbeat too slow", file: "lock:\n  lease: 10s\n  heartbeat: 6s\n", wantKey: "lock.heartbeat"},
		{name: "same collection twice", file: "collections:\n  links: accounts\n", wantKey: "collections.links"},
		{name: "empty identity codes", env: []string{"RUNNER_IDENTITY_AUTH_TYPE_CODES="}, wantKey: "identity.auth_type_codes"},
		{name: "identifiers compare exactly by default", check: func(c Config) bool {
			return len(c.Identity.Normalize.LowerCase) == 0 && len(c.Identity.Normalize.UnicodeNFC) == 0
		}},
		{name: "normalisation from file", file: "identity:\n  normalize:\n    lower_case: [email]\n    unicode_nfc: [email, phone]\n",
			check: func(c Config) bool {
				return reflect.DeepEqual(c.Identity.Normalize, phase1.Normalize{LowerCase: []string{"email"}, UnicodeNFC: []string{"email", "phone"}})
			}},
		{name: "normalisation from env", env: []string{"RUNNER_IDENTITY_NORMALIZE_LOWER_CASE=email"},
			check: func(c Config) bool { return reflect.DeepEqual(c.Identity.Normalize.LowerCase, []string{"email"}) }},
		{name: "normalising a code that identifies nobody", env: []string{"RUNNER_IDENTITY_NORMALIZE_UNICODE_NFC=username"}, wantKey: "identity.normalize.unicode_nfc"},
		{name: "normalising a code no longer listed", file: "identity:\n  auth_type_codes: [phone]\n  normalize:\n    lower_case: [email]\n", wantKey: "identity.normalize.lower_case"},
		{name: "bad database name", file: "mongodb:\n  database: a.b\n", wantKey: "mongodb.database"},
		{name: "references from file", file: "references:\n  - logins_sessions:account_id\n  - credentials:account_auth_types.account_id\n",
			check: func(c Config) bool {
				r, err := c.ParsedReferences()
				return err == nil && reflect.DeepEqual(r, []references.Ref{{Collection: "logins_sessions", Path: "account_id"}, {Collection: "credentials", Path: "account_auth_types.account_id"}})
			}},
		{name: "references from env", env: []string{"RUNNER_REFERENCES=follows:follower_id,follows:following_id"},
			check: func(c Config) bool {
				r, err := c.ParsedReferences()
				return err == nil && reflect.DeepEqual(r, []references.Ref{{Collection: "follows", Path: "follower_id"}, {Collection: "follows", Path: "following_id"}})
			}},
		{name: "reference without path", env: []string{"RUNNER_REFERENCES=sessions"}, wantKey: "references"},
		{name: "reference to the legacy accounts", env: []string{"RUNNER_REFERENCES=accounts:x"}, wantKey: "references"},
		{name: "reference to the tenant accounts", env: []string{"RUNNER_REFERENCES=tenants_accounts:org_id"}, wantKey: "references"},
		{name: "reference to the links", env: []string{"RUNNER_REFERENCES=tenants_accounts_links:tenant_id"}, wantKey: "references"},
		{name: "reference to the app-orgs", env: []string{"RUNNER_REFERENCES=applications_organizations:x"}, wantKey: "references"},
		{name: "reference to the runner's own", env: []string{"RUNNER_REFERENCES=migrations_references:x"}, wantKey: "references"},
		{name: "reference to an _id", env: []string{"RUNNER_REFERENCES=sessions:_id"}, wantKey: "references"},
		{name: "reference by array position", env: []string{"RUNNER_REFERENCES=sessions:owners.0"}, wantKey: "references"},
		{name: "reference with an operator", env: []string{"RUNNER_REFERENCES=sessions:$x"}, wantKey: "references"},
		{name: "reference twice", env: []string{"RUNNER_REFERENCES=s:a,s:a"}, wantKey: "references"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := ""
			if tt.file != "" {
				path = writeFile(t, tt.file)
			}
			fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
			AddFlags(fs)
			if err := fs.Parse(tt.flags); err != nil {
				t.Fatal(err)
			}
			cfg, err := load(path, fs, tt.env)
			if tt.wantKey == "" {
				if err != nil {
					t.Fatalf("load: %v", err)
				}
				if !tt.check(cfg) {
					t.Errorf("unexpected config %+v", cfg)
				}
				return
			}
			e, ok := err.(*Error)
			if !ok || e.Key != tt.wantKey {
				t.Fatalf("load: err = %v, want a config error naming %s", err, tt.wantKey)
			}
			if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, tt.wantKey) || !strings.Contains(msg, tt.wantMsg) {
				t.Errorf("error is not one line naming the key: %q", msg)
			}
		})
	}
}

func TestMissingExplicitFile(t *testing.T) {
	_, err := load(filepath.Join(t.TempDir(), "nope.yaml"), nil, nil)
	if !IsError(err) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("missing file: err = %v, want a one-line config error", err)
	}
}
