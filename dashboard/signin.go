package dashboard

import "github.com/dunningco/dunning/internal/guesslimit"

// Sign-in limit defaults: each client address may fail DefaultSignInFailures
// sign-ins in a row, and earns one more every DefaultSignInWindow /
// DefaultSignInFailures (30 s), so the budget is whole again after
// DefaultSignInWindow. An API key's secret is far too long to guess, but
// an unlimited form still lets anyone hammer the key store and fill the
// logs; a person who mistypes a key ten times is not hindered. The codec
// endpoint's token is limited alike (guesslimit).
const (
	DefaultSignInFailures = guesslimit.DefaultFailures
	DefaultSignInWindow   = guesslimit.DefaultWindow
)
