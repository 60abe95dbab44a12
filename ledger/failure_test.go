package ledger

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"
)

func TestUnreachableTimedOut(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	tests := []struct {
		name        string
		err         error
		unreachable bool
		timedOut    bool
	}{
		{"nil", nil, false, false},
		{"pool closed", fmt.Errorf("analytics: summary: %w", puddle.ErrClosedPool), true, false},
		{"connection refused", fmt.Errorf("analytics: summary: %w", refused), true, false},
		{"connection closed", fmt.Errorf("ledger: runs: %w", pgconn.ErrConnClosed), true, false},
		{"connection dropped mid-answer", fmt.Errorf("ledger: runs: %w", io.ErrUnexpectedEOF), true, false},
		{"admin shutdown", fmt.Errorf("ledger: runs: %w", &pgconn.PgError{Code: "57P01"}), true, false},
		{"crash shutdown", &pgconn.PgError{Code: "57P02"}, true, false},
		{"server starting", &pgconn.PgError{Code: "57P03"}, true, false},
		{"too many connections", &pgconn.PgError{Code: "53300"}, true, false},
		{"connection exception", &pgconn.PgError{Code: "08006"}, true, false},
		{"connection does not exist", &pgconn.PgError{Code: "08003"}, true, false},
		{"deadline", fmt.Errorf("analytics: summary: %w", context.DeadlineExceeded), false, true},
		{"statement timeout", fmt.Errorf("ledger: runs: %w", &pgconn.PgError{Code: "57014"}), false, true},
		{"cancelled", fmt.Errorf("ledger: runs: %w", context.Canceled), false, false},
		{"missing table", &pgconn.PgError{Code: "42P01"}, false, false},
		{"unique violation", &pgconn.PgError{Code: "23505"}, false, false},
		{"invalid input", fmt.Errorf("ledger: %w", ErrInvalid), false, false},
		{"a bug", errors.New("analytics: scan summary: cannot scan NULL into *int64"), false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Unreachable(tt.err); got != tt.unreachable {
				t.Errorf("Unreachable = %v, want %v", got, tt.unreachable)
			}
			if got := TimedOut(tt.err); got != tt.timedOut {
				t.Errorf("TimedOut = %v, want %v", got, tt.timedOut)
			}
		})
	}
}

// TestUnreachableTimedOutFromPgx: the errors pgx itself returns when the
// server is away or a read outlives its context, not only hand-built ones.
func TestUnreachableTimedOutFromPgx(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nobody listens there now
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = pgconn.Connect(ctx, "postgres://postgres@"+addr+"/postgres?sslmode=disable&connect_timeout=2")
	if err == nil {
		t.Fatal("connected to a closed port")
	}
	if !Unreachable(err) || TimedOut(err) {
		t.Errorf("refused connection %v: Unreachable %v TimedOut %v, want true, false", err, Unreachable(err), TimedOut(err))
	}

	done, stop := context.WithCancel(context.Background())
	stop()
	_, err = pgconn.Connect(done, "postgres://postgres@"+addr+"/postgres?sslmode=disable")
	if TimedOut(err) {
		t.Errorf("connect with a cancelled context %v: TimedOut, want not", err)
	}
	expired, stop2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer stop2()
	_, err = pgconn.Connect(expired, "postgres://postgres@"+addr+"/postgres?sslmode=disable")
	if !TimedOut(err) {
		t.Errorf("connect past its deadline %v: not TimedOut", err)
	}
}
