package intake

import (
	"errors"
	"net/http"
	"time"

	"github.com/dunningco/dunning/cardlink"
	"github.com/dunningco/dunning/ledger"
)

// WithCardLinks serves GET /v1/card-links/{token}: the hosted card-update
// page sends the token from its link and learns which run and customer it
// is for, or that the link is forged or expired.
func WithCardLinks(s *cardlink.Signer) Option {
	return func(h *handler) { h.cardLinks = s }
}

type cardLinkAnswer struct {
	RunID      string    `json:"run_id"`
	CustomerID string    `json:"customer_id"`
	ExpiresAt  time.Time `json:"expires_at"`
}

func (h *handler) resolveCardLink(w http.ResponseWriter, r *http.Request) {
	claims, err := h.cardLinks.Verify(r.PathValue("token"), time.Now())
	if err == nil && h.readModel != nil {
		// A link outlives its run: once the run has closed (paid,
		// cancelled, exhausted) there is nothing to update a card for.
		view, verr := h.readModel.RunView(r.Context(), claims.RunID)
		switch {
		case verr == nil && view.Run.Status != "open":
			writeError(w, http.StatusGone, "this invoice is settled or closed; the card-update link no longer applies")
			return
		case verr != nil && !errors.Is(verr, ledger.ErrNotFound):
			w.Header().Set("Retry-After", "5")
			writeError(w, http.StatusServiceUnavailable, "cannot check the link's invoice right now; try again")
			return
		}
	}
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, cardLinkAnswer{RunID: claims.RunID, CustomerID: claims.CustomerID, ExpiresAt: claims.Expires})
	case errors.Is(err, cardlink.ErrExpired):
		writeError(w, http.StatusGone, "this card-update link has expired; a new one comes with the next message")
	case errors.Is(err, cardlink.ErrBadSignature):
		writeError(w, http.StatusForbidden, "this card-update link is not valid")
	default:
		writeError(w, http.StatusBadRequest, "this is not a card-update link token")
	}
}
