package gateway

import (
	"fmt"
	"regexp"

	"mellium.im/xmpp/jid"
)

// UserJID turns a username from a URL or credentials into the user's bare JID
// on domain. The localpart goes through PRECIS (RFC 7613 UsernameCaseMapped)
// so "Alice" and "alice" name the same account (the ancestor compared raw
// strings and split one user into two).
func UserJID(username, domain string) (jid.JID, error) {
	if username == "" {
		return jid.JID{}, fmt.Errorf("%w: username is empty", ErrInvalidAddress)
	}
	j, err := jid.New(username, domain, "")
	if err != nil {
		return jid.JID{}, fmt.Errorf("%w: username %q: %v", ErrInvalidAddress, username, err)
	}
	return j, nil
}

// ParseAddress parses a JID given by a client (RFC 7622). A bare localpart
// without a domain is rejected rather than guessed.
func ParseAddress(s string) (jid.JID, error) {
	if s == "" {
		return jid.JID{}, fmt.Errorf("%w: JID is empty", ErrInvalidAddress)
	}
	j, err := jid.Parse(s)
	if err != nil {
		return jid.JID{}, fmt.Errorf("%w: JID %q: %v", ErrInvalidAddress, s, err)
	}
	// Normalisation must be idempotent, or the JID we send is not the one
	// that was checked (e.g. "bob@.." normalises to "bob@.", itself invalid).
	if again, err := jid.Parse(j.String()); err != nil || !again.Equal(j) || j.Domainpart() == "" {
		return jid.JID{}, fmt.Errorf("%w: JID %q does not normalise to a stable address", ErrInvalidAddress, s)
	}
	return j, nil
}

// resourcePattern restricts client-chosen resource prefixes to what every
// server binds unchanged and every log and URL shows without escaping; the
// gateway appends a random suffix to keep resources unique (a duplicate
// resource makes the server kick the older session).
var resourcePattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,48}$`)

// ValidateResource checks a client-chosen resource prefix.
func ValidateResource(r string) error {
	if r == "" || resourcePattern.MatchString(r) {
		return nil
	}
	return fmt.Errorf("%w: resource must be 1-48 characters of A-Z a-z 0-9 . _ -", ErrInvalidInput)
}

// stanzaIDPattern bounds client-chosen stanza ids to a safe, loggable form.
var stanzaIDPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)
