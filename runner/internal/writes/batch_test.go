package writes

import (
	"context"
	"errors"
	"slices"
	"testing"
)

func TestBatch(t *testing.T) {
	tests := []struct {
		size, items int
		want        []int // the sizes of the batches flushed
	}{
		{size: 3, items: 0, want: nil},
		{size: 3, items: 3, want: []int{3}},
		{size: 3, items: 7, want: []int{3, 3, 1}},
		{size: 0, items: 2, want: []int{1, 1}},
	}
	for _, tt := range tests {
		var got []int
		var seen []int
		b := Batch[int]{Size: tt.size, Flush: func(_ context.Context, items []int) error {
			got = append(got, len(items))
			seen = append(seen, items...)
			return nil
		}}
		for i := range tt.items {
			if err := b.Add(context.Background(), i); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, tt.want) || len(seen) != tt.items {
			t.Errorf("size %d, %d items: flushed %v (%d items), want %v", tt.size, tt.items, got, len(seen), tt.want)
		}
	}
	boom := errors.New("boom")
	b := Batch[int]{Size: 1, Flush: func(context.Context, []int) error { return boom }}
	if err := b.Add(context.Background(), 1); !errors.Is(err, boom) {
		t.Errorf("a failed flush = %v, want its error", err)
	}
}
