package intake

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/dunningco/dunning/cardlink"
)

func TestResolveCardLink(t *testing.T) {
	signer := &cardlink.Signer{Secret: []byte(strings.Repeat("k", 32)), BaseURL: "https://billing.example.com/update-card", TTL: time.Hour}
	other := &cardlink.Signer{Secret: []byte(strings.Repeat("x", 32)), BaseURL: signer.BaseURL, TTL: time.Hour}
	valid, err := signer.Token("dunning/acme/inv-1", "cus-1", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	expired, _ := signer.Token("dunning/acme/inv-1", "cus-1", time.Now().Add(-2*time.Hour))
	forged, _ := other.Token("dunning/acme/inv-1", "cus-1", time.Now())
	h := NewHandler(&fakeRuns{}, slog.New(slog.DiscardHandler), WithCardLinks(signer))
	tests := []struct {
		name  string
		token string
		want  int
	}{
		{"valid", valid, http.StatusOK},
		{"expired", expired, http.StatusGone},
		{"signed with another secret", forged, http.StatusForbidden},
		{"malformed", "not-a-token", http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/card-links/"+tt.token, nil))
			if rec.Code != tt.want {
				t.Fatalf("status = %d (%s), want %d", rec.Code, rec.Body, tt.want)
			}
			if tt.want != http.StatusOK {
				return
			}
			var got cardLinkAnswer
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			if got.RunID != "dunning/acme/inv-1" || got.CustomerID != "cus-1" || time.Until(got.ExpiresAt) <= 0 {
				t.Fatalf("answer = %+v", got)
			}
		})
	}
	rec := httptest.NewRecorder()
	NewHandler(&fakeRuns{}, slog.New(slog.DiscardHandler)).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/card-links/"+valid, nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("without card links configured: %d, want 404", rec.Code)
	}
}

// A card-update link stops working once its run has closed.
func TestCardLinkOfAClosedRunIsGone(t *testing.T) {
	signer := &cardlink.Signer{Secret: []byte(strings.Repeat("k", 32)), BaseURL: "https://billing.example.com/update-card", TTL: time.Hour}
	token, err := signer.Token("dunning/acme/inv-1", "cus-1", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		status string
		want   int
	}{{"open", http.StatusOK}, {"recovered", http.StatusGone}, {"cancelled", http.StatusGone}} {
		view := heldView()
		view.Run.Status = tt.status
		h := NewHandler(&fakeRuns{}, slog.New(slog.DiscardHandler), WithCardLinks(signer), WithReadModel(&fakeReadModel{view: view}))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/card-links/"+token, nil))
		if rec.Code != tt.want {
			t.Errorf("run %s: %d %s, want %d", tt.status, rec.Code, rec.Body, tt.want)
		}
	}
}
