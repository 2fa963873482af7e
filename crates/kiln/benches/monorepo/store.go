// Package store is a generic in-memory store.
package store

import (
	"encoding/json"
	"errors"
	"sort"
	"sync"
)

// ErrNotFound is returned for unknown keys.
var ErrNotFound = errors.New("not found")

// Keyed values know their key.
type Keyed interface{ Key() string }

// Store holds values by key.
type Store[T Keyed] struct {
	mu    sync.RWMutex
	items map[string]T
}

// New returns an empty store.
func New[T Keyed]() *Store[T] { return &Store[T]{items: map[string]T{}} }

// Put stores v.
func (s *Store[T]) Put(v T) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.items[v.Key()] = v
}

// Get returns the value for k.
func (s *Store[T]) Get(k string) (T, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, ok := s.items[k]
	if !ok {
		var zero T
		return zero, ErrNotFound
	}
	return v, nil
}

// Delete removes k.
func (s *Store[T]) Delete(k string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.items[k]
	delete(s.items, k)
	return ok
}

// List returns all values ordered by key.
func (s *Store[T]) List() []T {
	s.mu.RLock()
	defer s.mu.RUnlock()
	keys := make([]string, 0, len(s.items))
	for k := range s.items {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]T, 0, len(keys))
	for _, k := range keys {
		out = append(out, s.items[k])
	}
	return out
}

// Snapshot serialises the store.
func (s *Store[T]) Snapshot() ([]byte, error) { return json.Marshal(s.List()) }
