package validation

import (
	"fmt"
	"regexp"
	"unicode"
	"unicode/utf8"

	"github.com/dunningco/dunning/cardlink"
)

// Length limits, in bytes. Every ID ends up in a Temporal workflow ID or
// search attribute (Keyword values are limited in size), in card-update
// link tokens (cardlink.MaxIDLen, 200 bytes per ID) and in provider
// requests (Stripe metadata values are at most 500 characters): the limits
// keep every one of them comfortably inside.
const (
	MaxTenantLen    = 64
	MaxIDLen        = 128 // invoice, customer, card fingerprint, plan, segment
	MaxDeclineIDLen = 255
	MaxCodeLen      = 64 // decline and advice codes
	MaxNetworkCode  = 8  // ISO 8583 response codes, Mastercard MACs
	MaxMessageLen   = 1024
	MaxReasonLen    = 1024 // cancel and expedite reasons, payment notes
	MaxActorLen     = 256  // "by": who asked
	MaxReferenceLen = 255  // payment references
	MaxEmailLen     = 254  // RFC 5321 forward-path limit
	MaxURLLen       = 2048
	MaxRunIDLen     = cardlink.MaxIDLen
)

// idPattern is the character set of IDs: it needs no escaping in a URL path,
// a workflow ID (where "/" separates parts), a search-attribute query or a
// log line.
var idPattern = regexp.MustCompile(`^[A-Za-z0-9._:@-]+$`)

const idChars = "letters, digits and . _ : @ -"

// checkID adds a problem when id breaks the ID rule; an empty id is a
// problem only when required.
func (p *problems) checkID(pointer, id string, maxLen int, required bool) {
	switch {
	case id == "":
		if required {
			p.add(pointer, "is required (1-%d %s)", maxLen, idChars)
		}
	case len(id) > maxLen:
		p.add(pointer, "is %d bytes long; at most %d", len(id), maxLen)
	case !idPattern.MatchString(id):
		p.add(pointer, "%s has characters other than %s", quote(id), idChars)
	}
}

var codePattern = regexp.MustCompile(`^[A-Za-z0-9_.:-]+$`)

// checkCode checks a decline, advice or network code.
func (p *problems) checkCode(pointer, code string, maxLen int, required bool) {
	switch {
	case code == "":
		if required {
			p.add(pointer, "is required")
		}
	case len(code) > maxLen:
		p.add(pointer, "is %d bytes long; at most %d", len(code), maxLen)
	case !codePattern.MatchString(code):
		p.add(pointer, "%s has characters other than letters, digits and _ . : -", quote(code))
	}
}

// checkText checks free text: valid UTF-8, at most maxLen bytes, and no
// control characters (tabs and, when multiline, line breaks aside), so it
// cannot forge log lines or message headers.
func (p *problems) checkText(pointer, s string, maxLen int, multiline bool) {
	if len(s) > maxLen {
		p.add(pointer, "is %d bytes long; at most %d", len(s), maxLen)
		return
	}
	if !utf8.ValidString(s) {
		p.add(pointer, "is not valid UTF-8")
		return
	}
	for _, r := range s {
		if r == '\t' || (multiline && r == '\n') || !unicode.IsControl(r) {
			continue
		}
		p.add(pointer, "contains the control character %U", r)
		return
	}
}

// quote quotes a value for an error message, shortened so a huge value
// does not make a huge answer.
func quote(s string) string {
	const max = 64
	if len(s) > max {
		return fmt.Sprintf("%q...", s[:max])
	}
	return fmt.Sprintf("%q", s)
}
