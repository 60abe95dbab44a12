package ledger

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dunningco/dunning/pii"
)

// e164 is an international phone number: a plus, a country code that does
// not start with zero, and at most 15 digits in all.
var e164 = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

// SetSMSOptOut records whether a phone number has opted out of SMS, from the
// keyword the customer sent (e.g. STOP or START) at the given time. Events
// may arrive out of order: an event older than the one already recorded is
// ignored, so a late START never undoes a newer STOP. An event at the same
// time as the recorded one replaces it. A zero at is recorded as now.
func (s *Store) SetSMSOptOut(ctx context.Context, phone string, optedOut bool, keyword, source string, at time.Time) error {
	switch {
	case !e164.MatchString(phone):
		return invalid("sms opt-out: phone number is not in E.164 form")
	case keyword == "":
		return invalid("sms opt-out: keyword is required")
	case source == "":
		return invalid("sms opt-out: source is required")
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO sms_consent (phone, opted_out, keyword, source, updated_at)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (phone) DO UPDATE
		SET opted_out = EXCLUDED.opted_out, keyword = EXCLUDED.keyword, source = EXCLUDED.source, updated_at = EXCLUDED.updated_at
		WHERE sms_consent.updated_at <= EXCLUDED.updated_at`,
		phone, optedOut, keyword, source, orNow(at))
	if err != nil {
		return fmt.Errorf("ledger: set sms opt-out of %s: %w", pii.MaskPhone(phone), err)
	}
	return nil
}

// SMSOptOut reports whether phone has opted out of SMS and the keyword of
// the latest recorded event (e.g. STOP, or START once opted back in). A
// number with no recorded event has not opted out: false, "".
func (s *Store) SMSOptOut(ctx context.Context, phone string) (optedOut bool, keyword string, err error) {
	if !e164.MatchString(phone) {
		return false, "", invalid("sms opt-out: phone number is not in E.164 form")
	}
	err = s.pool.QueryRow(ctx, `SELECT opted_out, keyword FROM sms_consent WHERE phone = $1`, phone).Scan(&optedOut, &keyword)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, "", nil
	}
	if err != nil {
		return false, "", fmt.Errorf("ledger: sms opt-out of %s: %w", pii.MaskPhone(phone), err)
	}
	return optedOut, keyword, nil
}

// SuppressEmail records that no email may be sent to the address, for the
// given reason (e.g. bounce, spamreport, unsubscribe). Addresses are compared
// case-insensitively. Suppressing an address again is a no-op: the first
// reason and time are kept. A zero at is recorded as now.
func (s *Store) SuppressEmail(ctx context.Context, email, reason, source string, at time.Time) error {
	addr, err := normalizeEmail(email)
	switch {
	case err != nil:
		return err
	case reason == "":
		return invalid("email suppression: reason is required")
	case source == "":
		return invalid("email suppression: source is required")
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO email_suppressions (email, reason, source, created_at)
		VALUES ($1, $2, $3, $4)
		ON CONFLICT (email) DO NOTHING`,
		addr, reason, source, orNow(at))
	if err != nil {
		return fmt.Errorf("ledger: suppress email %s: %w", pii.MaskEmail(addr), err)
	}
	return nil
}

// UnsuppressEmail lets email be sent to the address again. An address that
// is not suppressed is left as it is.
func (s *Store) UnsuppressEmail(ctx context.Context, email string) error {
	addr, err := normalizeEmail(email)
	if err != nil {
		return err
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM email_suppressions WHERE email = $1`, addr); err != nil {
		return fmt.Errorf("ledger: unsuppress email %s: %w", pii.MaskEmail(addr), err)
	}
	return nil
}

// EmailSuppressed reports whether email may not be sent to the address, and
// why. An address that was never suppressed is false, "".
func (s *Store) EmailSuppressed(ctx context.Context, email string) (suppressed bool, reason string, err error) {
	addr, err := normalizeEmail(email)
	if err != nil {
		return false, "", err
	}
	err = s.pool.QueryRow(ctx, `SELECT reason FROM email_suppressions WHERE email = $1`, addr).Scan(&reason)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, "", nil
	}
	if err != nil {
		return false, "", fmt.Errorf("ledger: email suppression of %s: %w", pii.MaskEmail(addr), err)
	}
	return true, reason, nil
}

// normalizeEmail trims and lower-cases an address, the form suppressions are
// stored and looked up in.
func normalizeEmail(email string) (string, error) {
	addr := strings.ToLower(strings.TrimSpace(email))
	if !strings.Contains(addr, "@") {
		return "", invalid("email suppression: the address has no @")
	}
	return addr, nil
}
