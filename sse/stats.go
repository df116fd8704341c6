package sse

// Stats are the broker's counters, for metrics.
type Stats struct {
	Topics      int
	Subscribers int
	// Published counts events accepted since start.
	Published uint64
	// Evicted counts subscribers disconnected for falling behind.
	Evicted uint64
}

// Stats returns the current counters.
func (b *Broker) Stats() Stats {
	b.mu.RLock()
	topics := make([]*topic, 0, len(b.topics))
	for _, t := range b.topics {
		topics = append(topics, t)
	}
	b.mu.RUnlock()
	st := Stats{Topics: len(topics), Published: b.published.Load(), Evicted: b.evicted.Load()}
	for _, t := range topics {
		t.mu.Lock()
		st.Subscribers += len(t.subs)
		t.mu.Unlock()
	}
	return st
}
