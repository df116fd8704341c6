package gateway

import (
	"context"
	"fmt"
	"maps"

	"mellium.im/xmpp/jid"
)

// ModuleSystemNotifications marks a headline as a system notification
// (ConnectyCube convention: extraParams.moduleIdentifier).
const ModuleSystemNotifications = "SystemNotifications"

// Notify sends a system notification to a user from the configured service
// account: a headline whose extraParams carry
// moduleIdentifier=SystemNotifications plus params. It returns the stanza id.
func (m *Manager) Notify(ctx context.Context, to jid.JID, body string, params map[string]string) (string, error) {
	s, err := m.serviceStream(ctx)
	if err != nil {
		return "", err
	}
	extra := maps.Clone(params)
	if extra == nil {
		extra = map[string]string{}
	}
	extra["moduleIdentifier"] = ModuleSystemNotifications
	return s.SendMessage(ctx, OutgoingMessage{To: to, Type: "headline", Body: body, ExtraParams: extra})
}

// serviceStream returns the service account's stream, logging it in on
// first use and again after it ended (idle expiry, credentials change).
// It is an ordinary stream, so admins see it in the stream list.
func (m *Manager) serviceStream(ctx context.Context) (*Stream, error) {
	if m.cfg.ServiceAccount == "" {
		return nil, ErrNotificationsDisabled
	}
	m.serviceMu.Lock()
	defer m.serviceMu.Unlock()
	if s := m.service; s != nil {
		select {
		case <-s.Done():
		default:
			return s, nil
		}
	}
	s, err := m.LoginAs(ctx, m.cfg.ServiceAccount, "notifications")
	if err != nil {
		return nil, fmt.Errorf("service account: %w", err)
	}
	m.service = s
	return s, nil
}

// trustedNotifier reports whether a system notification from this sender
// is to be believed: the configured service account or the server itself.
// Anyone else's headline with moduleIdentifier=SystemNotifications stays an
// ordinary headline, so users cannot forge operator announcements.
func (m *Manager) trustedNotifier(from string) bool {
	j, err := jid.Parse(from)
	if err != nil {
		return false
	}
	if j.Localpart() == "" && j.Domainpart() == m.cfg.Domain {
		return true
	}
	if m.cfg.ServiceAccount == "" {
		return false
	}
	svc, err := UserJID(m.cfg.ServiceAccount, m.cfg.Domain)
	return err == nil && j.Bare().Equal(svc)
}
