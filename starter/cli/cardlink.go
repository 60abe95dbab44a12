package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/dunningco/dunning/cardlink"
)

// cardLinkAnswer is what card-link prints: the answer of
// GET /v1/card-links/{token}.
type cardLinkAnswer struct {
	RunID      string    `json:"run_id"`
	CustomerID string    `json:"customer_id"`
	ExpiresAt  time.Time `json:"expires_at"`
}

// cardLink checks a card-update link token with CARD_LINK_SECRET, as the
// public surface's GET /v1/card-links/{token} does, without a server: what
// support needs when a customer says the link in a message does not work.
func (a *app) cardLink(_ context.Context, args []string) error {
	fs := a.newFlagSet("card-link", "-token T [-o table|json]")
	token := fs.String("token", "", "the token query parameter of the card-update link (required)")
	out := fs.addOutput()
	if err := parse(fs, args, "token"); err != nil {
		return err
	}
	secret := a.getenv("CARD_LINK_SECRET")
	if secret == "" {
		return errors.New("CARD_LINK_SECRET is not set: the workers' card-link secret checks the token")
	}
	claims, err := cardlink.Signer{Secret: []byte(secret)}.Verify(*token, time.Now())
	switch {
	case errors.Is(err, cardlink.ErrExpired):
		return fmt.Errorf("%w: the link has expired; a new one comes with the next message", errConflict)
	case errors.Is(err, cardlink.ErrBadSignature):
		return usagef("the link's signature is not valid for CARD_LINK_SECRET")
	case errors.Is(err, cardlink.ErrConfig):
		return err
	case err != nil:
		return usagef("this is not a card-update link token: %v", err)
	}
	ans := cardLinkAnswer{RunID: claims.RunID, CustomerID: claims.CustomerID, ExpiresAt: claims.Expires}
	return a.emit(*out, ans, func(w io.Writer) {
		fmt.Fprintf(w, "RUN\t%s\nCUSTOMER\t%s\nEXPIRES\t%s\n", ans.RunID, ans.CustomerID, when(ans.ExpiresAt))
	})
}
