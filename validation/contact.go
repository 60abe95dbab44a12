package validation

import (
	"errors"
	"fmt"
	"github.com/dunningco/dunning/pii"
	"net/mail"
	"regexp"
	"strings"
	"time"

	"github.com/nyaruka/phonenumbers"
	"golang.org/x/text/language"

	"github.com/dunningco/dunning/workflows"
)

// Email checks an email address and returns it as it will be used: the
// input without surrounding spaces. It must be exactly one bare address
// (no display name, no comments, no list) that net/mail parses back to
// itself, and never contain a line break: an address is copied into mail
// headers, where CR/LF would let a sender add headers of their own.
func Email(s string) (string, error) {
	if strings.ContainsAny(s, "\r\n") {
		return "", errors.New("contains a line break")
	}
	addr := strings.TrimSpace(s)
	if len(addr) > MaxEmailLen {
		return "", fmt.Errorf("is %d bytes long; at most %d", len(addr), MaxEmailLen)
	}
	parsed, err := mail.ParseAddress(addr)
	if err != nil {
		return "", fmt.Errorf("%s is not an email address (%s)", maskedEmail(s), strings.TrimPrefix(err.Error(), "mail: "))
	}
	if parsed.Name != "" || parsed.Address != addr {
		return "", fmt.Errorf("%s must be a bare address such as ada@example.com, without a display name, quotes or comments", maskedEmail(s))
	}
	_, domain, _ := strings.Cut(addr, "@")
	if !strings.Contains(domain, ".") || strings.HasSuffix(domain, ".") {
		return "", fmt.Errorf("%s has no fully qualified domain", maskedEmail(s))
	}
	return addr, nil
}

// Phone is a phone number as the platform keeps it.
type Phone struct {
	// E164 is the number in E.164 form, e.g. "+48123456789".
	E164 string
	// Region is the number's ISO 3166 region, e.g. "PL"; empty for
	// non-geographic numbers.
	Region string
	// TimeZone is the number's IANA time zone when the numbering plan
	// gives exactly one (a Polish number: Europe/Warsaw), else empty (a US
	// toll-free number spans dozens).
	TimeZone string
}

// maxPhoneInput bounds the text handed to the parser: E.164 has at most 15
// digits, and formatting characters do not need more room than this.
const maxPhoneInput = 40

// ParsePhone parses a phone number and normalizes it to E.164. A number
// without a leading + is read in defaultRegion (ISO 3166, e.g. "FR"); with
// no region such a number is refused. The number must be valid in its
// numbering plan, not merely the right length.
func ParsePhone(s, defaultRegion string) (Phone, error) {
	if len(s) > maxPhoneInput {
		return Phone{}, fmt.Errorf("is %d bytes long; a phone number needs at most %d", len(s), maxPhoneInput)
	}
	if strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return Phone{}, errors.New("contains a control character")
	}
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, "+") && defaultRegion == "" {
		return Phone{}, fmt.Errorf("%s is not an E.164 number such as +48123456789 (give customer.country to send national numbers)", maskedPhone(s))
	}
	num, err := phonenumbers.Parse(s, defaultRegion)
	if err != nil || !phonenumbers.IsValidNumber(num) {
		return Phone{}, fmt.Errorf("%s is not a valid phone number; send it in E.164 form such as +48123456789", maskedPhone(s))
	}
	p := Phone{E164: phonenumbers.Format(num, phonenumbers.E164)}
	if region := phonenumbers.GetRegionCodeForNumber(num); len(region) == 2 && region != "ZZ" {
		p.Region = region
	}
	if zones, err := phonenumbers.GetTimezonesForNumber(num); err == nil && len(zones) == 1 && zones[0] != phonenumbers.UNKNOWN_TIMEZONE {
		if _, err := time.LoadLocation(zones[0]); err == nil {
			p.TimeZone = zones[0]
		}
	}
	return p, nil
}

var countryPattern = regexp.MustCompile(`^[A-Z]{2}$`)

// maxLocaleLen is the longest BCP 47 tag worth keeping (RFC 5646 advises
// supporting at least 35 characters).
const maxLocaleLen = 35

// Customer checks who is dunned and returns the customer as the run will
// hold it: email trimmed, phone in E.164, and, when the customer has no
// country or no time zone, the phone number's region and (single) time
// zone in their place, so SMS quiet hours and bank holidays follow the
// customer rather than UTC. base is the customer's JSON pointer.
func Customer(c workflows.Customer, base string) (workflows.Customer, error) {
	var p problems
	c = p.customer(c, base)
	return c, p.err()
}

func (p *problems) customer(c workflows.Customer, base string) workflows.Customer {
	p.checkID(base+"/id", c.ID, MaxIDLen, true)
	if c.Email != "" {
		if addr, err := Email(c.Email); err != nil {
			p.add(base+"/email", "%v", err)
		} else {
			c.Email = addr
		}
	}
	region := c.Country
	if c.Country != "" && !countryPattern.MatchString(c.Country) {
		p.add(base+"/country", "%s is not an ISO 3166 alpha-2 code such as \"PL\"", quote(c.Country))
		region = ""
	}
	if c.Locale != "" {
		tag, err := language.Parse(c.Locale)
		if len(c.Locale) > maxLocaleLen || err != nil {
			p.add(base+"/locale", "%s is not a BCP 47 language tag such as \"fr-FR\"", quote(c.Locale))
		} else if r, conf := tag.Region(); conf == language.Exact && region == "" {
			region = r.String()
		}
	}
	p.checkTimeZone(base+"/time_zone", c.TimeZone)
	if c.Phone != "" {
		c = p.phone(c, base, region)
	}
	return c
}

// phone normalizes the customer's phone and fills the country and time
// zone from it where they are empty. National numbers are read in region:
// the customer's country, else the locale's region.
func (p *problems) phone(c workflows.Customer, base, region string) workflows.Customer {
	ph, err := ParsePhone(c.Phone, region)
	if err != nil {
		p.add(base+"/phone", "%v", err)
		return c
	}
	c.Phone = ph.E164
	if c.Country == "" {
		c.Country = ph.Region
	}
	if c.TimeZone == "" {
		c.TimeZone = ph.TimeZone
	}
	return c
}

// checkTimeZone checks that zone is empty or an IANA zone name.
func (p *problems) checkTimeZone(pointer, zone string) {
	if zone == "" {
		return
	}
	// "Local" is the worker's own zone, which differs between machines.
	if _, err := time.LoadLocation(zone); err != nil || len(zone) > 64 || zone == "Local" {
		p.add(pointer, "%s is not an IANA time zone such as \"Europe/Warsaw\"", quote(zone))
	}
}

// maskedEmail and maskedPhone quote a refused contact with most of it
// masked: errors reach logs and API answers, and must not carry the
// customer's address or number in full.
func maskedEmail(s string) string { return quote(pii.MaskEmail(s)) }
func maskedPhone(s string) string { return quote(pii.MaskPhone(s)) }
