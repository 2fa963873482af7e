// Package middleware wraps handlers with request ids, logging and panic recovery.
package middleware

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"example.com/benchrepo/internal/shared"
)

type recorder struct {
	http.ResponseWriter
	status int
	bytes  int
}

func (r *recorder) WriteHeader(s int) { r.status = s; r.ResponseWriter.WriteHeader(s) }
func (r *recorder) Write(b []byte) (int, error) {
	n, err := r.ResponseWriter.Write(b)
	r.bytes += n
	return n, err
}

func requestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Chain applies request id, recovery and logging to h.
func Chain(h http.Handler, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(shared.HeaderRequestID)
		if id == "" {
			id = requestID()
		}
		w.Header().Set(shared.HeaderRequestID, id)
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		start := time.Now()
		defer func() {
			if p := recover(); p != nil {
				log.Error("panic", "id", id, "panic", fmt.Sprint(p))
				shared.WriteError(rec, http.StatusInternalServerError, fmt.Errorf("internal error %s", id))
			}
			log.Info("request", "id", id, "method", r.Method, "path", r.URL.Path, "status", rec.status,
				"bytes", rec.bytes, "took", time.Since(start), "api", shared.APIVersion)
		}()
		h.ServeHTTP(rec, r)
	})
}
