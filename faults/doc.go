// Package faults is the fault-injection suite: the platform as it runs in
// production, broken on purpose.
//
// The tests build the real binaries (cmd/dunning-worker and cmd/dunning,
// whose `serve` is the intake API) and run them as separate processes
// against the Temporal CLI's dev server (its own process, on its own file),
// PostgreSQL (a throw-away database on the shared server, or a private
// cluster the test creates and stops), and fake providers that count what
// they receive: the in-house HTTP gateway's protocol (package httpgw),
// SendGrid's mail send and Twilio's Messages API. Faults are real: SIGKILL
// of a worker while a charge or a send is in flight, a PostgreSQL or
// Temporal server stopped and started again, providers answering 409, 429
// and 5xx, floods of decline reports. Each scenario asserts exact counts:
// charges the gateway executed (per idempotency key), messages per key,
// ledger rows and the run's final outcome.
//
// `go test ./faults/` runs the subset that CI runs; FAULTS=full runs every
// scenario. The Temporal CLI is found through TEMPORAL_CLI_BIN, the CI tool
// cache (~/.cache/dunning-ci/bin/temporal) or PATH; without it the suite
// skips, and with CI=true it fails instead. README, "Fault-injection suite",
// lists what each scenario proves.
package faults
