// Package shared holds the API types and the JSON and HTTP helpers every service uses.
package shared

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
)

// MaxBody bounds request bodies.
const MaxBody = 1 << 20

// HeaderRequestID carries the request id.
const HeaderRequestID = "X-Request-Id"

// ErrInvalid marks validation failures.
var ErrInvalid = errors.New("invalid")

// WriteJSON writes v as JSON with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Api-Version", APIVersion)
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// WriteError writes an error body.
func WriteError(w http.ResponseWriter, status int, err error) {
	WriteJSON(w, status, map[string]string{"error": err.Error(), "status": http.StatusText(status)})
}

// ParseLimit reads ?limit= with a default and an upper bound.
func ParseLimit(r *http.Request, def int) int {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return def
	}
	return min(n, 1000)
}

// Page is one page of a listing.
type Page[T any] struct {
	Items []T  `json:"items"`
	More  bool `json:"more"`
}

// Paginate cuts items to limit.
func Paginate[T any](items []T, limit int) Page[T] {
	if len(items) <= limit {
		return Page[T]{Items: items}
	}
	return Page[T]{Items: items[:limit], More: true}
}

// Health answers liveness probes.
func Health(service string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		WriteJSON(w, http.StatusOK, map[string]string{"service": service, "api": APIVersion, "status": "ok"})
	}
}
