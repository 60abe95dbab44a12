package intake

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"
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
// two go away by themselves, so only they tell the client to retry.
func ledgerFailureStatus(err error) int {
	if errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err) || sqlState(err) == "57014" {
		return http.StatusGatewayTimeout
	}
	if ledgerUnreachable(err) {
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// ledgerUnreachable reports whether err means the ledger could not be
// reached rather than that it answered wrongly: the pool is closed (the
// process is shutting down), no connection could be made (refused, DNS,
// authentication), the connection broke mid-answer, or the server refused
// work while shutting down, starting or full.
func ledgerUnreachable(err error) bool {
	if errors.Is(err, puddle.ErrClosedPool) || errors.Is(err, pgconn.ErrConnClosed) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	if _, ok := errors.AsType[*pgconn.ConnectError](err); ok {
		return true
	}
	if _, ok := errors.AsType[*net.OpError](err); ok {
		return true
	}
	// pgx says so of errors that happened before anything was sent, such
	// as a connection that could not be locked.
	if pgconn.SafeToRetry(err) {
		return true
	}
	switch code := sqlState(err); {
	case strings.HasPrefix(code, "08"): // connection exception
		return true
	case code == "57P01", code == "57P02", code == "57P03": // admin or crash shutdown, cannot connect now
		return true
	case code == "53300": // too many connections
		return true
	}
	return false
}

// sqlState is the SQLSTATE of a PostgreSQL error in err's chain, or "".
func sqlState(err error) string {
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok {
		return pgErr.Code
	}
	return ""
}
