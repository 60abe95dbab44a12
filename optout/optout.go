// Package optout reads the keyword replies customers send to our SMS
// numbers (STOP, START, HELP) the way Twilio's default opt-out handling does,
// so the ledger's record of SMS consent matches what Twilio enforces.
//
// The keywords are Twilio's documented defaults for long codes:
//
//   - opt-out: STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT, REVOKE, OPTOUT
//   - opt-in: START, UNSTOP, YES
//   - help: HELP, INFO
//
// Sources: "Twilio support for opt-out keywords (SMS STOP filtering)"
// (help.twilio.com, article 223134027) for the first six opt-out keywords
// and the opt-in and help lists, and the Advanced Opt-Out guide
// (twilio.com/docs/messaging/tutorials/advanced-opt-out), which adds REVOKE
// and OPTOUT to the default opt-out keywords. Phrases other providers accept,
// such as "STOP ALL" or "OPT-OUT", are not Twilio defaults and are not
// keywords here: Twilio would keep delivering to such a sender, and the
// ledger must not disagree with it.
//
// As with Twilio, only a message that is exactly one keyword counts: "stop
// please" or "don't stop" is no keyword. Letter case, surrounding whitespace
// and trailing punctuation ("Stop!", " stop. ") are ignored. Numbers whose
// Messaging Service customises the keywords with Advanced Opt-Out need the
// same customisation here.
package optout

import (
	"slices"
	"strings"
	"unicode"
)

// Action is what a keyword reply asks for.
type Action int

// Actions a reply can ask for. The zero value, None, is any message that is
// not a keyword.
const (
	None Action = iota
	OptOut
	OptIn
	Help
)

// String returns the action's name, e.g. "opt-out".
func (a Action) String() string {
	switch a {
	case None:
		return "none"
	case OptOut:
		return "opt-out"
	case OptIn:
		return "opt-in"
	case Help:
		return "help"
	}
	return "unknown"
}

// keywords maps each upper-case keyword to its action.
var keywords = map[string]Action{
	"STOP":        OptOut,
	"STOPALL":     OptOut,
	"UNSUBSCRIBE": OptOut,
	"CANCEL":      OptOut,
	"END":         OptOut,
	"QUIT":        OptOut,
	"REVOKE":      OptOut,
	"OPTOUT":      OptOut,

	"START":  OptIn,
	"UNSTOP": OptIn,
	"YES":    OptIn,

	"HELP": Help,
	"INFO": Help,
}

// ParseSMS returns the action an inbound SMS body asks for: OptOut, OptIn or
// Help when the whole message is one of the keywords, None otherwise.
func ParseSMS(body string) Action {
	a, _ := ParseSMSKeyword(body)
	return a
}

// ParseSMSKeyword is ParseSMS that also returns the keyword in upper case,
// e.g. OptOut, "STOP" for " Stop! ". A message that is not a keyword is
// None, "".
func ParseSMSKeyword(body string) (Action, string) {
	word := strings.TrimLeftFunc(body, unicode.IsSpace)
	word = strings.TrimRightFunc(word, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsPunct(r) })
	if len(word) == 0 || len(word) > len("UNSUBSCRIBE") {
		return None, ""
	}
	// Keywords are ASCII letters. Folding only ASCII keeps look-alikes out:
	// strings.ToUpper would turn "ſtop" (long s) into "STOP".
	upper := make([]byte, len(word))
	for i := range len(word) {
		c := word[i]
		switch {
		case 'A' <= c && c <= 'Z':
		case 'a' <= c && c <= 'z':
			c -= 'a' - 'A'
		default:
			return None, ""
		}
		upper[i] = c
	}
	a, ok := keywords[string(upper)]
	if !ok {
		return None, ""
	}
	return a, string(upper)
}

// Keywords returns the keywords that ask for a, sorted; none for None.
func Keywords(a Action) []string {
	var out []string
	for k, v := range keywords {
		if v == a {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}
