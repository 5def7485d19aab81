package step

import (
	"context"
	"sync"

	"go.mongodb.org/mongo-driver/bson"
)

// MemoryStore keeps the values of a Store in memory, for work that must
// leave nothing behind (a probe on scratch collections). Its records
// collection names are given by Prefix.
type MemoryStore struct {
	Prefix string
	mu     sync.Mutex
	values map[string][]byte
}

// Load decodes into v the value under key; false when there is none.
func (m *MemoryStore) Load(_ context.Context, key string, v any) (bool, error) {
	m.mu.Lock()
	b, ok := m.values[key]
	m.mu.Unlock()
	if !ok {
		return false, nil
	}
	return true, bson.Unmarshal(b, v)
}

// Save stores v under key.
func (m *MemoryStore) Save(_ context.Context, key string, v any) error {
	b, err := bson.Marshal(v)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.values == nil {
		m.values = map[string][]byte{}
	}
	m.values[key] = b
	return nil
}

// Clear removes the value under key.
func (m *MemoryStore) Clear(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.values, key)
	return nil
}

// Records is Prefix followed by name.
func (m *MemoryStore) Records(name string) string { return m.Prefix + name }
