package intake

import (
	"net/http"

	"github.com/dunningco/dunning/ledger"
)

// ledgerFailed answers a failed ledger read (analytics, audit) by what the
// failure says about the ledger, so every endpoint that reads it answers
// an outage alike: 503 with Retry-After when the ledger cannot be reached,
// 504 with Retry-After when it did not answer in time, 500 for anything
// else, which is a bug to look at. what names the reader in the log.
func (h *handler) ledgerFailed(w http.ResponseWriter, r *http.Request, what string, err error) {
	if r.Context().Err() != nil {
		// The client left: nobody reads the answer, and it is no failure
		// of ours.
		h.logger.InfoContext(r.Context(), "request abandoned by the client", "path", r.URL.Path, "error", err)
		return
	}
	switch ledgerFailureStatus(err) {
	case http.StatusGatewayTimeout:
		h.logger.WarnContext(r.Context(), "timed out reading the ledger", "reader", what, "path", r.URL.Path, "error", err)
		writeRetryable(w, http.StatusGatewayTimeout, "timed out reading the ledger; try again")
	case http.StatusServiceUnavailable:
		h.logger.WarnContext(r.Context(), "the ledger is unavailable", "reader", what, "path", r.URL.Path, "error", err)
		writeRetryable(w, http.StatusServiceUnavailable, "the ledger could not be read; try again")
	default:
		h.logger.ErrorContext(r.Context(), what+" read failed", "path", r.URL.Path, "error", err)
		writeError(w, http.StatusInternalServerError, "internal error; the failure was logged")
	}
}

// ledgerFailureStatus classifies a failed ledger read: 504 for a timeout
// (ours or the server's statement_timeout), 503 when PostgreSQL could not
// be reached or dropped the connection, 500 for the rest. Only the first
// two go away by themselves, so only they tell the client to retry. A
// connection attempt that timed out is both; it answers 504, as the read
// did not get an answer in time.
func ledgerFailureStatus(err error) int {
	switch {
	case ledger.TimedOut(err):
		return http.StatusGatewayTimeout
	case ledger.Unreachable(err):
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}
