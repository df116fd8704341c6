package gateway

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// Archive results count only when they come from the archive the query
// went to (XEP-0313 §4.2); anyone who learnt a query id cannot slip
// messages into a history page.
func TestArchiveState_KeepsOnlyResultsFromTheQueriedArchive(t *testing.T) {
	t.Parallel()
	var a archiveState
	a.begin("q1", "room@conference.example.org")
	a.add("q1", "room@conference.example.org", "real", nil)
	a.add("q1", "mallory@example.org", "forged", nil)
	a.add("q1", "", "no sender", nil)
	a.add("q2", "room@conference.example.org", "other query", nil)
	a.add("q1", "mallory@example.org", nil, &SkippedStanza{Reason: "forged skip"})
	got := a.end("q1")
	require.Equal(t, []any{"real"}, got.msgs)
	require.Empty(t, got.skipped)
	require.Empty(t, a.source("q1"), "an ended query has no source")
}
