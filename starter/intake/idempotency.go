package intake

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/dunningco/dunning/idempotency"
)

// IdempotencyStore records answers by Idempotency-Key; *idempotency.Store
// implements it.
type IdempotencyStore interface {
	Begin(ctx context.Context, scope, key string, fingerprint []byte, lease time.Duration) (idempotency.Outcome, idempotency.Response, error)
	Complete(ctx context.Context, scope, key string, resp idempotency.Response) error
	Release(ctx context.Context, scope, key string) error
}

var _ IdempotencyStore = (*idempotency.Store)(nil)

// WithIdempotency honours the Idempotency-Key header on the private API's
// POSTs: a retry with the same key and the same request gets the first
// answer (with Idempotent-Replayed: true) and changes nothing; the same
// key with another request is refused with 422, and while the first
// request runs a retry gets 409. Keys are scoped to the API key's tenant.
// Without a store the header is ignored.
func WithIdempotency(s IdempotencyStore) Option {
	return func(h *handler) { h.idem = s }
}

// Header names of HTTP idempotency.
const (
	HeaderIdempotencyKey = "Idempotency-Key"
	// HeaderReplayed marks an answer replayed from the first request.
	HeaderReplayed = "Idempotent-Replayed"
)

// MaxIdempotencyKeyLen bounds the header's value.
const MaxIdempotencyKeyLen = 255

// idempotencyKey reads the header: a token or, as the draft writes it, a
// structured-field string ("..."). ok false with a detail means malformed.
func idempotencyKey(r *http.Request) (key, detail string, present bool) {
	values := r.Header.Values(HeaderIdempotencyKey)
	if len(values) == 0 {
		return "", "", false
	}
	if len(values) > 1 {
		return "", "send one Idempotency-Key header", true
	}
	v := strings.TrimSpace(values[0])
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	if v == "" || len(v) > MaxIdempotencyKeyLen {
		return "", "the Idempotency-Key must be 1-255 printable ASCII characters, e.g. a UUID", true
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return "", "the Idempotency-Key must be 1-255 printable ASCII characters, e.g. a UUID", true
		}
	}
	return v, "", true
}

// idempotent wraps a POST route with the Idempotency-Key protocol.
func (h *handler) idempotent(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key, detail, present := idempotencyKey(r)
		if !present || h.idem == nil {
			next(w, r)
			return
		}
		if detail != "" {
			writeError(w, http.StatusBadRequest, detail)
			return
		}
		p, ok := PrincipalFrom(r.Context())
		if !ok {
			next(w, r)
			return
		}
		// The body is read here for its fingerprint and handed on as read;
		// one over the limit goes on unread-looking, and the route refuses
		// it with 413 (nothing to remember).
		data, err := io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes+1))
		if err != nil {
			writeError(w, http.StatusBadRequest, "could not read the request body")
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(data))
		if len(data) > MaxBodyBytes {
			next(w, r)
			return
		}
		sum := sha256.New()
		sum.Write([]byte(r.Method + "\n" + r.URL.RequestURI() + "\n"))
		sum.Write(data)
		fingerprint := sum.Sum(nil)

		// The lease outlasts the longest the route may take, so a live
		// request is never taken over.
		outcome, first, err := h.idem.Begin(r.Context(), p.Tenant, key, fingerprint, h.timeout+time.Minute)
		if err != nil {
			h.logger.ErrorContext(r.Context(), "idempotency store unavailable", "path", r.URL.Path, "error", err)
			writeRetryable(w, http.StatusServiceUnavailable, "the Idempotency-Key cannot be checked right now; try again")
			return
		}
		switch outcome {
		case idempotency.Mismatch:
			writeProblem(w, ProblemIdempotencyMismatch, http.StatusUnprocessableEntity,
				"this Idempotency-Key was used with another request; use a new key for a new request")
			return
		case idempotency.InProgress:
			w.Header().Set("Retry-After", "1")
			writeProblem(w, ProblemIdempotencyInProgress, http.StatusConflict,
				"a request with this Idempotency-Key is still being processed; retry when it has finished")
			return
		case idempotency.Replay:
			for k, v := range first.Header {
				w.Header().Set(k, v)
			}
			w.Header().Set(HeaderReplayed, "true")
			w.WriteHeader(first.Status)
			_, _ = w.Write(first.Body)
			return
		}

		rec := &recorder{header: http.Header{}}
		done := false
		// The record outlives the request; a client gone away must not
		// leave the key held.
		store := func(fn func(context.Context) error) {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 5*time.Second)
			defer cancel()
			if err := fn(ctx); err != nil {
				h.logger.ErrorContext(r.Context(), "idempotency record not written", "path", r.URL.Path, "error", err)
			}
		}
		defer func() {
			if !done { // the route panicked: free the key for a retry
				store(func(ctx context.Context) error { return h.idem.Release(ctx, p.Tenant, key) })
			}
		}()
		next(rec, r)
		done = true
		status := rec.statusCode()
		if status >= 500 || status == http.StatusTooManyRequests {
			// "Try again" answers are not the request's outcome: the
			// retry runs it again.
			store(func(ctx context.Context) error { return h.idem.Release(ctx, p.Tenant, key) })
		} else {
			resp := idempotency.Response{Status: status, Header: map[string]string{}, Body: rec.body.Bytes()}
			for k := range rec.header {
				resp.Header[k] = rec.header.Get(k)
			}
			store(func(ctx context.Context) error { return h.idem.Complete(ctx, p.Tenant, key, resp) })
		}
		rec.copyTo(w)
	}
}

// recorder holds a route's answer until it is recorded.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}

func (r *recorder) statusCode() int {
	if r.status == 0 {
		return http.StatusOK
	}
	return r.status
}

func (r *recorder) copyTo(w http.ResponseWriter) {
	for k, v := range r.header {
		w.Header()[k] = v
	}
	w.WriteHeader(r.statusCode())
	_, _ = w.Write(r.body.Bytes())
}
