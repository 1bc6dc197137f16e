package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

// unavailable wraps err with store.ErrUnavailable when it means the
// database cannot be reached now, so the issuer answers 503 and the
// client may retry; other errors are returned unchanged. pgx error
// texts name host, user and database, never the password.
func unavailable(err error) error {
	if err == nil || !unreachable(err) {
		return err
	}
	return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
}

func unreachable(err error) bool {
	// Any failure to connect, even a refused login: the request can
	// succeed once the server is back or the credentials are fixed.
	if _, ok := errors.AsType[*pgconn.ConnectError](err); ok {
		return true
	}
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok {
		return unavailableState(pgErr.Code)
	}
	if _, ok := errors.AsType[net.Error](err); ok {
		return true // *net.OpError, net.ErrClosed, dial and I/O timeouts
	}
	switch {
	case errors.Is(err, pgconn.ErrConnClosed),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		// The caller's deadline passed waiting for a pooled connection or
		// for a slow server. A cancelled context is the caller leaving,
		// not the database failing, and passes through.
		errors.Is(err, context.DeadlineExceeded):
		return true
	}
	return pgconn.Timeout(err)
}

// unavailableState reports SQLSTATEs (PostgreSQL docs, Appendix A "Error
// Codes") after which the same request can succeed later.
func unavailableState(code string) bool {
	switch code {
	case "57P01", // admin_shutdown: the server is stopping, or pg_terminate_backend
		"57P02", // crash_shutdown
		"57P03", // cannot_connect_now: starting up or in recovery
		"57P05", // idle_session_timeout: the server closed this connection
		"53300", // too_many_connections
		"25006": // read_only_sql_transaction: reached a standby, e.g. during failover
		return true
	}
	return strings.HasPrefix(code, "08") // connection_exception class
}

// parseError describes a DSN that does not parse without quoting it:
// pgx masks passwords in its message only on a best-effort basis.
func parseError(err error) error {
	const hint = "postgres: dsn is not a valid connection string (postgres://user:password@host:port/database?sslmode=verify-full, or key=value pairs)"
	pe, ok := errors.AsType[*pgconn.ParseConfigError](err)
	if !ok {
		return errors.New(hint)
	}
	// pgx's message is "cannot parse `<dsn>`: <msg>[ (<cause>)]"; <msg> is
	// one of its fixed texts, which hold no "`: ".
	text := pe.Error()
	if cause := pe.Unwrap(); cause != nil {
		text = strings.TrimSuffix(text, " ("+cause.Error()+")")
	}
	i := strings.LastIndex(text, "`: ")
	if i < 0 {
		return errors.New(hint)
	}
	msg := text[i+len("`: "):]
	// TLS settings fail with fixed texts or a file's name, worth showing;
	// other causes can quote part of the DSN.
	cause := pe.Unwrap()
	_, isPath := errors.AsType[*fs.PathError](cause)
	if cause != nil && (msg == "failed to configure TLS" || isPath) {
		msg += ": " + cause.Error()
	}
	return fmt.Errorf("postgres: invalid dsn: %s", msg)
}
