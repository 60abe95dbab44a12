package optout_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/dunningco/dunning/optout"
)

func TestParseSMS(t *testing.T) {
	tests := []struct {
		body        string
		want        optout.Action
		wantKeyword string
	}{
		// Twilio's default opt-out keywords.
		{"STOP", optout.OptOut, "STOP"},
		{"STOPALL", optout.OptOut, "STOPALL"},
		{"UNSUBSCRIBE", optout.OptOut, "UNSUBSCRIBE"},
		{"CANCEL", optout.OptOut, "CANCEL"},
		{"END", optout.OptOut, "END"},
		{"QUIT", optout.OptOut, "QUIT"},
		{"REVOKE", optout.OptOut, "REVOKE"},
		{"OPTOUT", optout.OptOut, "OPTOUT"},
		// Opt-in.
		{"START", optout.OptIn, "START"},
		{"UNSTOP", optout.OptIn, "UNSTOP"},
		{"YES", optout.OptIn, "YES"},
		// Help.
		{"HELP", optout.Help, "HELP"},
		{"INFO", optout.Help, "INFO"},

		// Case, surrounding whitespace and trailing punctuation are ignored.
		{"stop", optout.OptOut, "STOP"},
		{"Stop", optout.OptOut, "STOP"},
		{"sToP", optout.OptOut, "STOP"},
		{"  stop  ", optout.OptOut, "STOP"},
		{"\tSTOP\r\n", optout.OptOut, "STOP"},
		{"\u00a0STOP\u00a0", optout.OptOut, "STOP"},
		{"Stop!", optout.OptOut, "STOP"},
		{"stop.", optout.OptOut, "STOP"},
		{"Stop!!!", optout.OptOut, "STOP"},
		{"stop ?!", optout.OptOut, "STOP"},
		{"Unsubscribe.", optout.OptOut, "UNSUBSCRIBE"},
		{"start!", optout.OptIn, "START"},
		{"Yes.", optout.OptIn, "YES"},
		{"help?", optout.Help, "HELP"},
		{"stop :)", optout.OptOut, "STOP"}, // ':' and ')' are punctuation
		{"info…", optout.Help, "INFO"},

		// Only a message that is exactly one keyword counts.
		{"", optout.None, ""},
		{"   ", optout.None, ""},
		{"!", optout.None, ""},
		{"stop please", optout.None, ""},
		{"please stop", optout.None, ""},
		{"don't stop", optout.None, ""},
		{"STOP ALL", optout.None, ""},
		{"STOP STOP", optout.None, ""},
		{"stop\nthanks", optout.None, ""},
		{"OPT-OUT", optout.None, ""},
		{"OPT OUT", optout.None, ""},
		{"stopp", optout.None, ""},
		{"stops", optout.None, ""},
		{"S T O P", optout.None, ""},
		{"yes please", optout.None, ""},
		{"I paid yesterday", optout.None, ""},
		{"ARRET", optout.None, ""},
		{"NO", optout.None, ""},
		// Leading punctuation is part of the message.
		{"!stop", optout.None, ""},
		{"\"stop\"", optout.None, ""},
		{"¿stop?", optout.None, ""},
		// Symbols and emoji are not punctuation.
		{"stop 👍", optout.None, ""},
		// Look-alike letters do not fold into keywords.
		{"ſtop", optout.None, ""}, // long s
		{"ЅТОР", optout.None, ""}, // Cyrillic
		{"ＳＴＯＰ", optout.None, ""}, // full-width
		{"stop\u200b", optout.None, ""},
	}
	for _, tt := range tests {
		t.Run(tt.body, func(t *testing.T) {
			if got := optout.ParseSMS(tt.body); got != tt.want {
				t.Errorf("ParseSMS(%q) = %v, want %v", tt.body, got, tt.want)
			}
			got, keyword := optout.ParseSMSKeyword(tt.body)
			if got != tt.want || keyword != tt.wantKeyword {
				t.Errorf("ParseSMSKeyword(%q) = %v, %q; want %v, %q", tt.body, got, keyword, tt.want, tt.wantKeyword)
			}
		})
	}
}

func TestKeywords(t *testing.T) {
	tests := []struct {
		action optout.Action
		want   []string
	}{
		{optout.OptOut, []string{"CANCEL", "END", "OPTOUT", "QUIT", "REVOKE", "STOP", "STOPALL", "UNSUBSCRIBE"}},
		{optout.OptIn, []string{"START", "UNSTOP", "YES"}},
		{optout.Help, []string{"HELP", "INFO"}},
		{optout.None, nil},
	}
	for _, tt := range tests {
		t.Run(tt.action.String(), func(t *testing.T) {
			got := optout.Keywords(tt.action)
			if !slices.Equal(got, tt.want) {
				t.Errorf("Keywords(%v) = %v, want %v", tt.action, got, tt.want)
			}
			for _, k := range got {
				if a := optout.ParseSMS(k); a != tt.action {
					t.Errorf("ParseSMS(%q) = %v, want %v", k, a, tt.action)
				}
			}
		})
	}
}

func TestActionString(t *testing.T) {
	for a, want := range map[optout.Action]string{
		optout.None: "none", optout.OptOut: "opt-out", optout.OptIn: "opt-in", optout.Help: "help", optout.Action(99): "unknown",
	} {
		if got := a.String(); got != want {
			t.Errorf("Action(%d).String() = %q, want %q", int(a), got, want)
		}
	}
}

func FuzzParseSMS(f *testing.F) {
	for _, seed := range []string{
		"STOP", "stop", " Stop! ", "stop please", "STOP ALL", "START", "unstop.", "HELP?", "info", "yes",
		"", "   ", "!!", "ſtop", "ＳＴＯＰ", "stop 👍", "\u00a0quit\u00a0", "I already paid",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		action, keyword := optout.ParseSMSKeyword(body)
		if got := optout.ParseSMS(body); got != action {
			t.Fatalf("ParseSMS(%q) = %v, ParseSMSKeyword = %v", body, got, action)
		}
		if action == optout.None {
			if keyword != "" {
				t.Fatalf("ParseSMSKeyword(%q) = None with keyword %q", body, keyword)
			}
			return
		}
		if !slices.Contains(optout.Keywords(action), keyword) {
			t.Fatalf("ParseSMSKeyword(%q) = %v, %q: not one of %v", body, action, keyword, optout.Keywords(action))
		}
		// The message is the keyword, give or take case, surrounding
		// whitespace and trailing punctuation.
		if !strings.Contains(strings.ToUpper(body), keyword) {
			t.Fatalf("ParseSMSKeyword(%q) = %q, which the message does not contain", body, keyword)
		}
		// Decoration keeps the action; other words drop it.
		if got := optout.ParseSMS(" " + strings.ToLower(body) + "! "); got != action {
			t.Fatalf("ParseSMS of decorated %q = %v, want %v", body, got, action)
		}
		for _, longer := range []string{"please " + body, body + " please", "x" + body} {
			if got := optout.ParseSMS(longer); got != optout.None {
				t.Fatalf("ParseSMS(%q) = %v, want None", longer, got)
			}
		}
	})
}
