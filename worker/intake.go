package worker

import (
	"fmt"
	"strings"

	"github.com/dunningco/dunning/gateway"
	"github.com/dunningco/dunning/money"
	"github.com/dunningco/dunning/validation"
	"github.com/dunningco/dunning/workflows"
)

// Environment variables the intake shares with the worker.
const (
	// EnvTaskQueue is the task queue workers poll and starters start runs
	// on; both sides must read the same one.
	EnvTaskQueue = "DUNNING_TASK_QUEUE"
	// EnvGateways names the gateways the workers charge through, e.g.
	// "simulator,stripe", for an intake that does not hold their secrets;
	// unset, the intake derives them as Build does.
	EnvGateways = "DUNNING_GATEWAYS"
	// EnvMaxAmounts caps amounts per currency, e.g.
	// "EUR=1000000.00,JPY=100000000"; other currencies keep
	// money.DefaultMaxMinor.
	EnvMaxAmounts = "DUNNING_MAX_AMOUNTS"
)

// Intake is what the intake (dunning serve, the CLI, dev mode) must agree on
// with the workers: the task queue they poll, the gateways they can charge
// through, and how large an amount the deployment accepts.
type Intake struct {
	TaskQueue string
	Rules     validation.Rules
}

// IntakeFromEnv reads DUNNING_TASK_QUEUE, DUNNING_MAX_AMOUNTS and the
// configured gateways: DUNNING_GATEWAYS, else the settings Build reads
// (STRIPE_API_KEY, HTTP_GATEWAY_URL), so a decline naming a gateway the
// workers do not have is refused at intake rather than parked by the run.
// An intake that does not hold the gateways' secrets (it needs none) names
// them in DUNNING_GATEWAYS.
func IntakeFromEnv(getenv func(string) string) (Intake, error) {
	queue := strings.TrimSpace(getenv(EnvTaskQueue))
	if queue == "" {
		queue = workflows.TaskQueue
	}
	limits, err := money.ParseLimits(getenv(EnvMaxAmounts))
	if err != nil {
		return Intake{}, fmt.Errorf("%s: %w", EnvMaxAmounts, err)
	}
	names := splitList(getenv(EnvGateways))
	if len(names) == 0 {
		p := Providers{StripeAPIKey: getenv("STRIPE_API_KEY"), HTTPGatewayURL: getenv("HTTP_GATEWAY_URL")}
		names = p.GatewayNames()
	}
	rules, err := validation.NewRules(names, limits)
	if err != nil {
		return Intake{}, fmt.Errorf("%s: %w", EnvGateways, err)
	}
	return Intake{TaskQueue: queue, Rules: rules}, nil
}

// GatewayNames lists the gateways Build configures for p: the simulator
// always (dev mode, demos and tests charge through it), Stripe and the HTTP
// gateway when their settings are present.
func (p Providers) GatewayNames() []string {
	names := []string{gateway.NameSimulator}
	if p.StripeAPIKey != "" {
		names = append(names, gateway.NameStripe)
	}
	if p.HTTPGatewayURL != "" {
		names = append(names, gateway.NameHTTP)
	}
	return names
}
