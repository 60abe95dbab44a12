package policy

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The built-in files hold exactly the values the policies had when they
// were Go code.
func TestBuiltinFilesKeepTheirValues(t *testing.T) {
	messages := []MessageRule{
		{Kind: PaymentFailed, Channels: []Channel{Email}},
		{Kind: RetryFailed, Channels: []Channel{Email}},
		{Kind: ServicePausedMsg, Channels: []Channel{Email, SMS}},
		{Kind: ServiceSuspMsg, Channels: []Channel{Email, SMS}},
		{Kind: ServiceCancelMsg, Channels: []Channel{Email}},
		{Kind: PaymentRecovered, Channels: []Channel{Email}},
		{Kind: UpdateCardReminder, Channels: []Channel{Email}},
	}
	wantDefault := Policy{
		Name:                 "default",
		Version:              2,
		RetryAfter:           durations(3*day, 7*day, 14*day),
		MaxAttempts:          3,
		Window:               Duration(21 * day),
		CardUpdateRetryDelay: Duration(15 * time.Minute),
		Ladder:               []LadderStep{{After: 0, State: ServicePaused}, {After: Duration(7 * day), State: ServiceSuspended}},
		CloseAfter:           Duration(7 * day),
		Messages:             messages,
		SMSWindow:            Window{Start: "08:00", End: "21:00"},
		Timing: Timing{
			Window:        Window{Start: "09:00", End: "11:00"},
			BusinessDays:  true,
			PaydayReasons: []string{"insufficient_funds"},
			MaxShift:      Duration(6 * day),
			Holidays:      wantHolidays,
		},
		Reminders: Reminders{
			BeforeDue:  durations(-3*day, 0, 3*day),
			CardExpiry: durations(30*day, 14*day, 7*day, day),
			Channels:   []Channel{Email},
		},
		MinAttemptGap:         Duration(20 * time.Hour),
		MaxCardUpdateAttempts: 3,
		ActionReminders:       durations(3*day, 7*day, 14*day),
	}
	if got := Default(); !reflect.DeepEqual(got, wantDefault) {
		t.Errorf("Default() = %+v\nwant %+v", got, wantDefault)
	}
	wantDemo := wantDefault
	wantDemo.Name = "demo"
	wantDemo.RetryAfter = durations(10*time.Second, 20*time.Second, 30*time.Second)
	wantDemo.Window = Duration(time.Minute)
	wantDemo.CardUpdateRetryDelay = Duration(2 * time.Second)
	wantDemo.Ladder = []LadderStep{{After: 0, State: ServicePaused}, {After: Duration(10 * time.Second), State: ServiceSuspended}}
	wantDemo.CloseAfter = Duration(10 * time.Second)
	wantDemo.Timing = Timing{}
	wantDemo.Reminders = Reminders{}
	wantDemo.MinAttemptGap = Duration(5 * time.Second)
	wantDemo.ActionReminders = durations(5*time.Second, 15*time.Second, 25*time.Second)
	if got := Demo(); !reflect.DeepEqual(got, wantDemo) {
		t.Errorf("Demo() = %+v\nwant %+v", got, wantDemo)
	}
}

// Callers get copies: changing one does not change the catalog.
func TestCatalogHandsOutCopies(t *testing.T) {
	p := Default()
	p.RetryAfter[0] = 1
	p.Messages[0].Channels[0] = SMS
	p.Timing.Holidays["US"][0] = "1999-01-01"
	if q := Default(); q.RetryAfter[0] != Duration(3*day) || q.Messages[0].Channels[0] != Email || q.Timing.Holidays["US"][0] != "2026-01-01" {
		t.Error("the built-in policy changed through a copy")
	}
}

func TestParseJSONAndYAMLAgree(t *testing.T) {
	b, err := json.Marshal(Default())
	if err != nil {
		t.Fatal(err)
	}
	fromJSON, err := Parse("default.json", b)
	if err != nil {
		t.Fatal(err)
	}
	if fromJSON.Hash() != Default().Hash() {
		t.Errorf("JSON round trip changed the policy: %s vs %s", fromJSON.Ref(), Default().Ref())
	}
	yml := `
name: gold
version: 2
retry_after: [1d, 36h, 4d12h]   # mixed units
max_attempts: 3
window: 7d
card_update_retry_delay: 10m
ladder: [{after: 0s, state: suspended}]
close_after: 2d
messages: [{kind: payment_failed, channels: [email, sms]}]
`
	for _, name := range []string{"gold.yaml", "gold.yml", "GOLD.YAML"} {
		p, err := Parse(name, []byte(yml))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(p.RetryAfter, durations(day, 36*time.Hour, 108*time.Hour)) || p.Window.D() != 7*day || p.Version != 2 {
			t.Errorf("%s: parsed %+v", name, p)
		}
	}
}

func TestParseRejects(t *testing.T) {
	valid := `name: gold
version: 1
retry_after: [1d, 3d]
max_attempts: 3
window: 7d
card_update_retry_delay: 15m
ladder:
  - {after: 0s, state: paused}
  - {after: 2d, state: suspended}
close_after: 7d
messages:
  - {kind: payment_failed, channels: [email]}
sms_window: {start: "08:00", end: "21:00"}
`
	tests := []struct {
		name string
		file string
		edit func(string) string
		want string
	}{
		{"bad duration", "gold.yaml", replace("window: 7d", "window: 7x"), `"7x"`},
		{"bad duration names the field", "gold.yaml", replace("window: 7d", "window: 7x"), "Policy.window"},
		{"bad duration in a list", "gold.yaml", replace("[1d, 3d]", "[1d, soon]"), "retry_after"},
		{"bad duration in the ladder", "gold.yaml", replace("after: 2d", "after: 2 days"), "ladder.after"},
		{"unknown field", "gold.yaml", appendLine("retries: 5"), `unknown field "retries"`},
		{"unknown nested field", "gold.yaml", replace("{start:", "{begin: x, start:"), `unknown field "sms_window.begin"`},
		{"unknown field in a list", "gold.yaml", replace("{after: 2d,", "{when: 2d, after: 2d,"), `unknown field "ladder[1].when"`},
		{"field name in the wrong case", "gold.yaml", replace("max_attempts: 3", "Max_Attempts: 3"), `unknown field "Max_Attempts"`},
		{"field set twice", "gold.yaml", appendLine("window: 8d"), `field "window" is set twice`},
		{"wrong type", "gold.yaml", replace("max_attempts: 3", "max_attempts: three"), "max_attempts"},
		{"negative card update delay", "gold.yaml", replace("card_update_retry_delay: 15m", "card_update_retry_delay: -15m"), "card_update_retry_delay is negative"},
		{"negative ladder step", "gold.yaml", replace("after: 2d", "after: -2d"), "ladder[1].after is negative"},
		{"negative close", "gold.yaml", replace("close_after: 7d", "close_after: -1d"), "close_after is negative"},
		{"negative window", "gold.yaml", replace("window: 7d", "window: -7d"), "window must be positive"},
		{"retry after the window", "gold.yaml", replace("window: 7d", "window: 2d"), "retry_after[1] (3d) falls outside the 2d window"},
		{"retries out of order", "gold.yaml", replace("[1d, 3d]", "[3d, 1d]"), "retry_after[1] (1d) must be after"},
		{"ladder not escalating", "gold.yaml", replace("state: suspended", "state: paused"), `ladder[1].state "paused" does not escalate`},
		{"unknown ladder state", "gold.yaml", replace("state: suspended", "state: frozen"), `ladder[1].state "frozen" is not paused`},
		{"unknown message kind", "gold.yaml", replace("kind: payment_failed", "kind: payment_late"), `messages[0].kind "payment_late" is unknown`},
		{"unknown channel", "gold.yaml", replace("channels: [email]", "channels: [email, fax]"), `messages[0].channels[1] "fax" is not email or sms`},
		{"bad sms_window", "gold.yaml", replace(`end: "21:00"`, `end: "25:00"`), "sms_window end"},
		{"sms_window backwards", "gold.yaml", replace(`end: "21:00"`, `end: "07:00"`), "sms_window start 08:00 must be before end 07:00"},
		{"silent attempts over the cap", "gold.yaml", appendLine("silent_attempts: 4"), "silent_attempts must be between 0 and max_attempts (3)"},
		{"too many attempts for Visa", "gold.yaml", replace("max_attempts: 3", "max_attempts: 16"), "max_attempts 16 exceeds Visa's 15"},
		{"no name", "gold.yaml", replace("name: gold", "name: ''"), "name is empty"},
		{"version zero", "gold.yaml", replace("version: 1", "version: 0"), "version must be at least 1"},
		{"empty file", "gold.yaml", func(string) string { return "" }, "the file is empty"},
		{"two documents", "gold.yaml", appendLine("---\nname: x"), "exactly one YAML document"},
		{"broken YAML", "gold.yaml", appendLine("messages: [unclosed"), "gold.yaml"},
		{"unknown extension", "gold.toml", func(s string) string { return s }, "not a .yaml, .yml or .json file"},
		{"JSON unknown field", "gold.json", func(string) string { return `{"name":"gold","version":1,"colour":"blue"}` }, `unknown field "colour"`},
		{"JSON trailing data", "gold.json", func(string) string { return jsonOf(t, valid) + "{}" }, "data after the top-level value"},
		{"JSON bad duration", "gold.json", func(string) string { return strings.Replace(jsonOf(t, valid), `"7d"`, `"a week"`, 1) }, "window"},
	}
	if _, err := Parse("gold.yaml", []byte(valid)); err != nil {
		t.Fatalf("the valid file is rejected: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.file, []byte(tt.edit(valid)))
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse = %v, want ErrInvalid", err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, tt.file+": ") || !strings.Contains(msg, tt.want) {
				t.Errorf("Parse = %q, want it to start with %q and mention %q", msg, tt.file, tt.want)
			}
		})
	}
}

func replace(old, new string) func(string) string {
	return func(s string) string {
		if !strings.Contains(s, old) {
			panic("test file lacks " + old)
		}
		return strings.Replace(s, old, new, 1)
	}
}

func appendLine(line string) func(string) string {
	return func(s string) string { return s + line + "\n" }
}

func jsonOf(t *testing.T, yml string) string {
	t.Helper()
	p, err := Parse("x.yaml", []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Card networks: Visa allows 15 reattempts per card in 30 days, Mastercard
// 10 declines per card in 24 hours.
func TestValidateCardNetworkRules(t *testing.T) {
	hourly := func(n int) []Duration {
		out := make([]Duration, n)
		for i := range out {
			out[i] = Duration(time.Duration(i+1) * time.Hour)
		}
		return out
	}
	tests := []struct {
		name   string
		modify func(*Policy)
		want   string
	}{
		{"nine retries in a day", func(p *Policy) { p.RetryAfter, p.MaxAttempts = hourly(9), 9 }, ""},
		{"ten retries in a day", func(p *Policy) { p.RetryAfter, p.MaxAttempts = hourly(10), 10 }, "11 declines (counting the first) within 1d of the decline, over Mastercard's 10"},
		{"ten retries in a later day", func(p *Policy) {
			p.RetryAfter = append([]Duration{Duration(2 * day)}, durations(49*time.Hour, 50*time.Hour, 51*time.Hour, 52*time.Hour, 53*time.Hour, 54*time.Hour, 55*time.Hour, 56*time.Hour, 57*time.Hour, 58*time.Hour)...)
			p.MaxAttempts = 11
		}, "11 declines (counting the first) within 1d of retry_after[0]"},
		{"retries a day apart", func(p *Policy) {
			p.RetryAfter = nil
			for i := range 15 {
				p.RetryAfter = append(p.RetryAfter, Duration(time.Duration(i+1)*day))
			}
			p.MaxAttempts, p.Window = 15, Duration(16*day)
		}, ""},
		{"sixteen attempts", func(p *Policy) { p.MaxAttempts = 16 }, "exceeds Visa's 15 reattempts per card in 30d"},
		{"timing could bunch retries", func(p *Policy) {
			// Ten retries 12h apart: fine as scheduled, but a 6-day timing
			// shift could move them all into one day.
			p.RetryAfter = nil
			for i := range 10 {
				p.RetryAfter = append(p.RetryAfter, Duration(time.Duration(i+1)*12*time.Hour))
			}
			p.MaxAttempts, p.Window = 10, Duration(20*day)
		}, "over Mastercard's 10"},
		{"silent attempts over the cap", func(p *Policy) { p.SilentAttempts = 4 }, "silent_attempts must be between 0 and max_attempts (3)"},
		{"negative silent attempts", func(p *Policy) { p.SilentAttempts = -1 }, "silent_attempts must be between"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Demo()
			if strings.Contains(tt.name, "timing") {
				p = Default()
			}
			p.Window = max(p.Window, Duration(3*day))
			tt.modify(&p)
			err := p.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestHashAndRef(t *testing.T) {
	p := Default()
	if !regexp.MustCompile(`^[0-9a-f]{12}$`).MatchString(p.Hash()) {
		t.Fatalf("Hash() = %q", p.Hash())
	}
	if p.Hash() != Default().Hash() {
		t.Error("hash is not stable")
	}
	if want := "default@2#" + p.Hash(); p.Ref() != want {
		t.Errorf("Ref() = %q, want %q", p.Ref(), want)
	}
	q := Default()
	q.RetryAfter[2] = Duration(13 * day)
	if q.Hash() == p.Hash() {
		t.Error("different schedules share a hash")
	}
	if Demo().Hash() == p.Hash() {
		t.Error("demo and default share a hash")
	}
	// How the file spells a duration does not matter.
	a, err1 := Parse("a.yaml", []byte(strings.Replace(string(mustRead(t, "policies/default.yaml")), "window: 21d", "window: 504h", 1)))
	if err1 != nil || a.Hash() != p.Hash() {
		t.Errorf("504h and 21d hash differently: %v", err1)
	}
}

func mustRead(t *testing.T, name string) []byte {
	t.Helper()
	b, err := builtinFiles.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const goldYAML = `name: gold
version: 1
retry_after: [1d, 3d]
max_attempts: 2
window: 7d
card_update_retry_delay: 15m
ladder: [{after: 0s, state: paused}]
close_after: 7d
messages: [{kind: payment_failed, channels: [email]}]
`

func TestLoadDir(t *testing.T) {
	silver, _ := json.Marshal(map[string]any{"name": "silver", "version": 1, "retry_after": []string{"2d"}, "max_attempts": 1,
		"window": "3d", "card_update_retry_delay": "1h", "ladder": []any{}, "close_after": "1d", "messages": []any{}})
	dir := writeFiles(t, map[string]string{
		"b-gold.yaml":    goldYAML,
		"a-silver.json":  string(silver),
		"README.md":      "not a policy",
		"selection.yaml": "rules: [{policy: gold}]",
	})
	if err := os.Mkdir(filepath.Join(dir, "old.yaml"), 0o700); err != nil {
		t.Fatal(err)
	}
	ps, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 || ps[0].Name != "silver" || ps[1].Name != "gold" {
		t.Fatalf("LoadDir = %+v, want silver then gold (sorted by file name)", ps)
	}

	dup := writeFiles(t, map[string]string{"a.yaml": goldYAML, "b.yml": goldYAML})
	if _, err := LoadDir(dup); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "b.yml: ") || !strings.Contains(err.Error(), `name "gold" is already used by `) {
		t.Errorf("duplicate name: %v", err)
	}
	bad := writeFiles(t, map[string]string{"gold.yaml": strings.Replace(goldYAML, "window: 7d", "window: 1d", 1)})
	if _, err := LoadDir(bad); err == nil || !strings.Contains(err.Error(), filepath.Join(bad, "gold.yaml")+": ") {
		t.Errorf("invalid file: %v", err)
	}
	if _, err := LoadDir(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing directory loads")
	}
}

func TestCatalogWith(t *testing.T) {
	gold, err := Parse("gold.yaml", []byte(goldYAML))
	if err != nil {
		t.Fatal(err)
	}
	c, err := Builtin().With(gold)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Names(); !reflect.DeepEqual(got, []string{"default", "demo", "gold"}) {
		t.Errorf("names = %v", got)
	}
	if _, ok := Builtin().Lookup("gold"); ok {
		t.Error("With changed the built-in catalog")
	}

	// Replacing a built-in needs a higher version when the content changes.
	d := Default()
	d.RetryAfter = durations(2*day, 7*day, 14*day)
	if _, err := Builtin().With(d); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "version 2 must be higher than the replaced policy's version 2") {
		t.Errorf("same version, new content: %v", err)
	}
	d.Version = 3
	c, err = Builtin().With(d)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := c.Lookup("default"); got.Version != 3 || got.RetryAfter[0] != Duration(2*day) {
		t.Errorf("default not replaced: %+v", got)
	}
	if _, err := Builtin().With(Default()); err != nil {
		t.Errorf("identical content at the same version: %v", err)
	}
	if _, err := Builtin().With(gold, gold); err == nil {
		t.Error("an override listed twice is accepted")
	}
	broken := gold
	broken.MaxAttempts = 0
	if _, err := Builtin().With(broken); !errors.Is(err, ErrInvalid) {
		t.Errorf("invalid override: %v", err)
	}
}

func TestCatalogWithDir(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"gold.yaml": goldYAML,
		"selection.yaml": `rules:
  - {match: {plan: gold}, policy: gold}
  - policy: default
`,
	})
	c, err := Builtin().WithDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if p, a, err := c.Select(Subject{Plan: "gold"}); err != nil || p.Name != "gold" || a.Rule != 0 {
		t.Errorf("Select(gold) = %s %+v %v", p.Name, a, err)
	}
	if p, a, err := c.Select(Subject{Plan: "basic"}); err != nil || p.Name != "default" || a.Rule != 1 {
		t.Errorf("Select(basic) = %s %+v %v", p.Name, a, err)
	}

	// Without a selection file the built-in selection stays.
	c, err = Builtin().WithDir(writeFiles(t, map[string]string{"gold.yaml": goldYAML}))
	if err != nil {
		t.Fatal(err)
	}
	if p, _, _ := c.Select(Subject{Plan: "gold"}); p.Name != "default" {
		t.Errorf("built-in selection lost: %s", p.Name)
	}

	// A selection naming a policy nobody provides is refused.
	_, err = Builtin().WithDir(writeFiles(t, map[string]string{"selection.yaml": "rules: [{policy: platinum}]"}))
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `rules[0].policy "platinum" is not in the catalog`) {
		t.Errorf("unknown policy in selection: %v", err)
	}
}
