package prosody

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRegisterMany(t *testing.T) {
	s := ForTest(t, Options{Users: map[string]string{"old": "before"}})
	users := map[string]string{"old": "after", "quote": `p'w"<&>\`}
	for i := range 300 {
		users[fmt.Sprintf("bulk%d", i)] = fmt.Sprintf("pw%d", i)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	start := time.Now()
	require.NoError(t, s.RegisterMany(ctx, users))
	t.Logf("registered %d users in %v", len(users), time.Since(start).Round(time.Millisecond))

	assert.Contains(t, plainAuth(t, s, "bulk0", "pw0"), "<success")
	assert.Contains(t, plainAuth(t, s, "bulk299", "pw299"), "<success")
	assert.Contains(t, plainAuth(t, s, "quote", `p'w"<&>\`), "<success")
	assert.Contains(t, plainAuth(t, s, "old", "after"), "<success", "an existing account gets the new password")
	assert.Contains(t, plainAuth(t, s, "old", "before"), "<failure")

	// Idempotent: running it again only resets passwords.
	require.NoError(t, s.RegisterMany(ctx, map[string]string{"bulk1": "again"}))
	assert.Contains(t, plainAuth(t, s, "bulk1", "again"), "<success")

	assert.ErrorContains(t, s.RegisterMany(ctx, map[string]string{"a@b": "x"}), "invalid username")
	assert.ErrorContains(t, s.RegisterMany(ctx, map[string]string{"a": ""}), "invalid username")

	require.NoError(t, s.Kill())
	assert.ErrorContains(t, s.RegisterMany(ctx, map[string]string{"x": "y"}), "running server")
}
