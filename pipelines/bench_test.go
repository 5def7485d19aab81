package pipelines_test

import (
	"testing"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/tenantmigrate/runner/model"
	"github.com/tenantmigrate/runner/pipelines"
	"github.com/tenantmigrate/runner/scripts/fixture/gen"
)

// BenchmarkOneToOne is the fallback path's hot transform, on fixture accounts.
func BenchmarkOneToOne(b *testing.B) {
	var docs []bson.D
	enc := gen.NewEncoder()
	err := gen.Accounts(gen.Options{Accounts: 2000, Seed: 1}, func(a model.LegacyAccount) error {
		d, err := enc.D(a)
		docs = append(docs, d)
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := pipelines.OneToOne(docs[i%len(docs)], "org"); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "accounts/s")
}
