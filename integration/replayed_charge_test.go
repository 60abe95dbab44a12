package integration

import (
	"context"
	"net/http"
	"testing"

	"github.com/dunningco/dunning/policy"
)

// testReplayedChargeKeepsNetworkCodes charges a Mastercard whose issuer
// answers MAC 03 (never retry), and loses the answer once: the retried
// activity gets the decline again under the same key, keeps its network
// codes in the ledger, and the card is blocked for every run.
func (p *platform) testReplayedChargeKeepsNetworkCodes(t *testing.T) {
	body := cardDecline("inv-mac03-replay", "sim:decline;code=do_not_honor;network_advice=03;flaky=1", "it-fast", "mastercard", "fp-mac03-replay",
		`{"gateway":"simulator","code":"insufficient_funds"}`)
	if code, out := p.do(t, http.MethodPost, "/v1/declines", body); code != http.StatusAccepted {
		t.Fatalf("start: %d %v", code, out)
	}
	res := p.result(t, "inv-mac03-replay")
	if res.Outcome != policy.Exhausted || res.Attempts != 1 {
		t.Fatalf("result = %+v, want exhausted after the one attempt MAC 03 allows", res)
	}
	key := "dunning/acme/inv-mac03-replay/attempt-1"
	if calls, charges := p.simulator.Calls(key), p.simulator.ChargesFor("inv-mac03-replay"); calls != 2 || charges != 1 {
		t.Errorf("gateway saw the key %d times for %d charges, want 2 calls (one lost answer) and 1 charge", calls, charges)
	}
	rows, err := p.store.Attempts(context.Background(), "dunning/acme/inv-mac03-replay")
	if err != nil || len(rows) != 1 || rows[0].NetworkAdviceCode != "03" || rows[0].Status != "declined" {
		t.Fatalf("ledger attempts = %+v (%v), want one declined attempt with MAC 03", rows, err)
	}
	var blocked int
	if err := p.store.Pool().QueryRow(context.Background(),
		`SELECT count(*) FROM card_blocks WHERE card_key = 'fp:fp-mac03-replay' AND blocked_until > now()`).Scan(&blocked); err != nil || blocked != 1 {
		t.Fatalf("card blocks = %d (%v), want the card blocked", blocked, err)
	}
}
