package writes

import "context"

// Batch gathers items and hands them to Flush a full batch at a time, and
// the rest at Close: the shape of every down, which reads what to undo in
// one pass and writes it back in batches.
type Batch[T any] struct {
	// Size is how many items make a batch (at least 1).
	Size int
	// Flush writes one batch; the slice is reused after it returns.
	Flush func(ctx context.Context, items []T) error
	items []T
}

// Add gathers item, flushing when the batch is full.
func (b *Batch[T]) Add(ctx context.Context, item T) error {
	if b.items = append(b.items, item); len(b.items) >= max(b.Size, 1) {
		return b.flush(ctx)
	}
	return nil
}

// Close flushes what is left.
func (b *Batch[T]) Close(ctx context.Context) error { return b.flush(ctx) }

func (b *Batch[T]) flush(ctx context.Context) error {
	if len(b.items) == 0 {
		return nil
	}
	err := b.Flush(ctx, b.items)
	b.items = b.items[:0]
	return err
}
