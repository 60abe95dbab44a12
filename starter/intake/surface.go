package intake

import (
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/dunningco/dunning/openapi"
)

// Surface is which routes a handler serves. The private API (runs,
// declines, reminders) is for billing systems holding an API key and should
// listen on an internal address; the public surface (provider webhooks,
// card-update links, the codec endpoint) is what providers and customers'
// browsers reach, and each of its routes authenticates on its own terms
// (signatures, signed tokens, the codec's token).
type Surface int

const (
	// SurfaceAll serves both surfaces on one handler: tests, and embedders
	// with a single listener.
	SurfaceAll Surface = iota
	// SurfacePrivate serves the private API; public paths answer 404.
	SurfacePrivate
	// SurfacePublic serves the public surface; every other path answers
	// 404, whether or not the request carries an API key.
	SurfacePublic
)

// WithSurface restricts the handler to one surface.
func WithSurface(s Surface) Option {
	return func(h *handler) { h.surface = s }
}

// NewPrivateHandler serves the private API (DUNNING_API_ADDR): every
// request but GET /healthz needs an API key (WithAuthenticator).
func NewPrivateHandler(runs Runs, logger *slog.Logger, opts ...Option) http.Handler {
	return NewHandler(runs, logger, append(opts, WithSurface(SurfacePrivate))...)
}

// NewPublicHandler serves the public surface (DUNNING_PUBLIC_ADDR): the
// webhooks and card-update links configured by opts, and GET /healthz.
func NewPublicHandler(runs Runs, logger *slog.Logger, opts ...Option) http.Handler {
	return NewHandler(runs, logger, append(opts, WithSurface(SurfacePublic))...)
}

// publicPrefixes are the paths of the public surface. The codec endpoint
// and dev mode's card page are mounted beside the intake handler, but
// they are listed here so the private listener refuses them too.
var publicPrefixes = []string{"/v1/webhooks/", "/v1/card-links/", "/codec/", "/card/"}

// IsPublicPath reports whether path belongs to the public surface.
func IsPublicPath(path string) bool {
	if path == "/codec" || path == "/card" {
		return true
	}
	for _, p := range publicPrefixes {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	return false
}

const (
	healthPath = "/healthz"
	// readyPath answers 200 only when Temporal and PostgreSQL answer, so a
	// load balancer sends no traffic to an API that cannot serve it.
	readyPath = "/readyz"
)

// onBothSurfaces reports whether path is served on both listeners without
// an API key: the health checks, and the API document and reference page,
// which integrators read before they hold a key.
func onBothSurfaces(path string) bool {
	switch path {
	case healthPath, readyPath, openapi.DocumentPath, openapi.ReferencePath:
		return true
	}
	return false
}

// surfaces sends a request to the surface its path belongs to, or answers
// 404 when this handler does not serve that surface. Private requests are
// authenticated and rate-limited before any route sees them; the health
// check needs no key on either surface.
func (h *handler) surfaces(private, public http.Handler) http.Handler {
	authed := h.authenticate(private)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case onBothSurfaces(r.URL.Path):
			public.ServeHTTP(w, r)
		case IsPublicPath(r.URL.Path):
			if h.surface == SurfacePrivate {
				notFound(w, r)
				return
			}
			public.ServeHTTP(w, r)
		default:
			if h.surface == SurfacePublic {
				notFound(w, r)
				return
			}
			authed.ServeHTTP(w, r)
		}
	})
}

func notFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint: %s %s", r.Method, r.URL.Path))
}
