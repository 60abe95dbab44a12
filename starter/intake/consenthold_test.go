package intake

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"testing"

	"github.com/dunningco/dunning/activities"
)

// holdingRuns is a Runs that can hold consents, as *starter.Client does
// through Temporal.
type holdingRuns struct {
	fakeRuns
	err  error
	mu   sync.Mutex
	held []activities.SMSConsent
}

func (r *holdingRuns) HoldSMSConsent(_ context.Context, c activities.SMSConsent) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	r.held = append(r.held, c)
	return nil
}

// A consent the ledger cannot record is answered 200 once the holder has
// it, and 503 with Retry-After when neither can keep it.
func TestTwilioInboundHeldWhileLedgerDown(t *testing.T) {
	tests := []struct {
		name       string
		keyword    string
		holdErr    error
		wantStatus int
		wantHeld   bool
	}{
		{"STOP held by Temporal", "STOP", nil, http.StatusOK, true},
		{"START held by Temporal", "START", nil, http.StatusOK, true},
		{"Temporal down too", "STOP", errors.New("temporal: unavailable"), http.StatusServiceUnavailable, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := &fakePreferences{errFor: map[string]error{testPhone: errors.New("connection refused")}}
			runs := &holdingRuns{err: tt.holdErr}
			h := NewHandler(runs, slog.New(slog.DiscardHandler), withClock(webhookNow), WithTwilioInbound(testAuthToken, testTwilioURL, store))
			form := inboundSMS(tt.keyword)
			rec := postTwilio(t, h, form.Encode(), twilioSignature(testAuthToken, testTwilioURL, form))
			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", rec.Code, tt.wantStatus, rec.Body)
			}
			if rec.Code == http.StatusServiceUnavailable && rec.Header().Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
			if got := len(runs.held) == 1; got != tt.wantHeld {
				t.Fatalf("held = %+v, want held %v", runs.held, tt.wantHeld)
			}
			if tt.wantHeld {
				c := runs.held[0]
				if c.Phone != testPhone || c.OptedOut != (tt.keyword == "STOP") || c.Keyword != tt.keyword ||
					c.MessageSid != form.Get("MessageSid") || !c.At.Equal(webhookNow) {
					t.Errorf("held consent = %+v", c)
				}
			}
		})
	}
}
