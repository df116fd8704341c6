package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/xmppgw/xmppgw/gateway"
)

// savedPresence is a broadcast presence as the registry keeps it
// (StatePresence): only what a re-sent presence needs.
type savedPresence struct {
	Type     string `json:"type,omitempty"`
	Show     string `json:"show,omitempty"`
	Status   string `json:"status,omitempty"`
	Priority int    `json:"priority,omitempty"`
}

func encodeState(st gateway.TakeoverState) (map[string]string, error) {
	p := st.Presence
	presence, err := json.Marshal(savedPresence{Type: p.Type, Show: p.Show, Status: p.Status, Priority: p.Priority})
	if err != nil {
		return nil, err
	}
	rooms, err := json.Marshal(st.Rooms)
	if err != nil {
		return nil, err
	}
	return map[string]string{StatePresence: string(presence), StateRooms: string(rooms)}, nil
}

func decodeState(fields map[string]string) (gateway.TakeoverState, error) {
	var st gateway.TakeoverState
	if v := fields[StatePresence]; v != "" {
		var p savedPresence
		if err := json.Unmarshal([]byte(v), &p); err != nil {
			return st, fmt.Errorf("saved presence: %w", err)
		}
		st.Presence = gateway.OutgoingPresence{Type: p.Type, Show: p.Show, Status: p.Status, Priority: p.Priority}
	}
	if v := fields[StateRooms]; v != "" {
		if err := json.Unmarshal([]byte(v), &st.Rooms); err != nil {
			return st, fmt.Errorf("saved rooms: %w", err)
		}
	}
	return st, nil
}

// Adopter returns the Takeover's Adopter for m: the claimed stream becomes
// this node's in the registry, and m re-opens it (gateway.Manager.Adopt)
// with its saved state, after the events its clients already have.
func (r *GatewayRegistry) Adopter(m *gateway.Manager) Adopter {
	return func(ctx context.Context, rec StreamRecord, fence LeaseFence) error {
		user, err := jid.Parse(rec.JID)
		if err != nil {
			return fmt.Errorf("record's JID: %w", err)
		}
		st, err := decodeState(rec.State)
		if err != nil {
			return err
		}
		hist, err := r.c.ReadAfter(ctx, rec.ID, 0, "")
		if err != nil {
			return err
		}
		log := make([][]byte, 0, len(hist.Events))
		for _, ev := range hist.Events {
			log = append(log, ev.Payload)
		}
		r.Adopt(rec, fence)
		// The old owner stopped at most a lease TTL and a sweep ago.
		dropped := time.Now().Add(-r.c.cfg.LeaseTTL - 2*r.c.cfg.LeaseRenew)
		if _, err := m.Adopt(ctx, gateway.AdoptRequest{ID: rec.ID, User: user, Resource: rec.Resource, Created: rec.Created,
			OnBehalf: rec.OnBehalf, State: st, Log: log, Dropped: dropped}); err != nil {
			r.Release(rec.ID)
			return err
		}
		return nil
	}
}
