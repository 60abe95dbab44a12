package worker

import (
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/dunningco/dunning/money"
)

// The intake accepts exactly the gateways the workers are built with.
func TestGatewayNamesMatchBuild(t *testing.T) {
	for _, p := range []Providers{
		{},
		{StripeAPIKey: "sk_test_123"},
		{HTTPGatewayURL: "https://billing.example.com/charge", HTTPGatewaySecret: "secret"},
		{StripeAPIKey: "sk_test_123", HTTPGatewayURL: "https://billing.example.com/charge", HTTPGatewaySecret: "secret"},
	} {
		d, err := Build(nil, Config{}, p, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		var built []string
		for _, g := range d.Gateways {
			built = append(built, g.Name())
		}
		slices.Sort(built)
		names := p.GatewayNames()
		slices.Sort(names)
		if !reflect.DeepEqual(built, names) {
			t.Errorf("Build configures %v, GatewayNames says %v", built, names)
		}
	}
}

func TestIntakeFromEnv(t *testing.T) {
	env := func(kv map[string]string) func(string) string {
		return func(k string) string { return kv[k] }
	}
	in, err := IntakeFromEnv(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if in.TaskQueue != "dunning" || !reflect.DeepEqual(in.Rules.GatewayNames(), []string{"simulator"}) {
		t.Errorf("defaults = %q %v", in.TaskQueue, in.Rules.GatewayNames())
	}
	in, err = IntakeFromEnv(env(map[string]string{
		"DUNNING_TASK_QUEUE": "dunning-eu", "DUNNING_MAX_AMOUNTS": "EUR=1000.00", "STRIPE_API_KEY": "sk_test_1",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if in.TaskQueue != "dunning-eu" || !reflect.DeepEqual(in.Rules.GatewayNames(), []string{"simulator", "stripe"}) {
		t.Errorf("configured = %q %v", in.TaskQueue, in.Rules.GatewayNames())
	}
	if err := money.MustParse("1000.01", "EUR").Within(in.Rules.Limits); err == nil {
		t.Error("DUNNING_MAX_AMOUNTS was not applied")
	}
	in, err = IntakeFromEnv(env(map[string]string{"DUNNING_GATEWAYS": "stripe, http", "STRIPE_API_KEY": ""}))
	if err != nil || !reflect.DeepEqual(in.Rules.GatewayNames(), []string{"http", "stripe"}) {
		t.Errorf("DUNNING_GATEWAYS: %v, %v", in.Rules.GatewayNames(), err)
	}
	if _, err := IntakeFromEnv(env(map[string]string{"DUNNING_GATEWAYS": "simulator,paypal"})); err == nil || !strings.Contains(err.Error(), `"paypal"`) {
		t.Errorf("unknown gateway in DUNNING_GATEWAYS: err = %v", err)
	}
	if _, err := IntakeFromEnv(env(map[string]string{"DUNNING_MAX_AMOUNTS": "EUR=lots"})); err == nil || !strings.Contains(err.Error(), "DUNNING_MAX_AMOUNTS") {
		t.Errorf("bad DUNNING_MAX_AMOUNTS: err = %v", err)
	}
}
