package ledger

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"
)

// Every reader of the ledger (the API, the dashboard) must answer an
// outage alike: "not now, retry" when the ledger is away or slow, "broken"
// only for what will not go away by itself. Unreachable and TimedOut say
// which a failed read was, so no reader has to know pgx's errors.

// Unreachable reports whether err means the ledger could not be reached
// rather than that it answered wrongly: the pool is closed (the process
// is shutting down), no connection could be made (refused, DNS,
// authentication), the connection broke mid-answer, or the server refused
// work while shutting down, starting or full. Such a failure goes away by
// itself, so a reader should tell its client to retry.
//
// A connection attempt that timed out is both unreachable and timed out;
// callers that tell the two apart ask TimedOut first.
func Unreachable(err error) bool {
	if err == nil {
		return false
	}
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
	switch code := pgCode(err); {
	case strings.HasPrefix(code, "08"): // connection exception
		return true
	case code == "57P01", code == "57P02", code == "57P03": // admin or crash shutdown, cannot connect now
		return true
	case code == "53300": // too many connections
		return true
	}
	return false
}

// TimedOut reports whether err means the ledger did not answer in time:
// the caller's deadline passed, or the server cancelled the statement at
// its statement_timeout. Like Unreachable, it is worth a retry; unlike it,
// a retry of the same read may time out again if the read is too heavy.
// A cancelled context is not a timeout: someone gave up on the read.
func TimedOut(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) || pgCode(err) == "57014" {
		return true
	}
	// pgx marks every read its context ended as a timeout, cancelled ones
	// included.
	return pgconn.Timeout(err) && !errors.Is(err, context.Canceled)
}
