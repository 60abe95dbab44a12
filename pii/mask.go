// Package pii shortens personal data before it reaches logs, errors and
// workflow histories.
package pii

import "strings"

// MaskPhone keeps the last two digits of a phone number, e.g. "**********00".
func MaskPhone(phone string) string {
	if len(phone) <= 2 {
		return strings.Repeat("*", len(phone))
	}
	return strings.Repeat("*", len(phone)-2) + phone[len(phone)-2:]
}

// MaskEmail keeps the first character of the local part and the domain,
// e.g. "j***@example.com".
func MaskEmail(email string) string {
	local, domain, ok := strings.Cut(email, "@")
	if !ok {
		return "***"
	}
	for _, r := range local {
		return string(r) + "***@" + domain
	}
	return "***@" + domain
}
