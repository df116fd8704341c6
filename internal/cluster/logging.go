package cluster

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/redis/go-redis/v9"
)

// redisLogger sends go-redis's own messages (dial failures, pool
// trouble) to the gateway's structured log instead of its default plain
// lines on stderr.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.WarnContext(ctx, fmt.Sprintf(format, v...))
}

// SetRedisLogger routes go-redis's messages to log. go-redis has one
// process-wide logger (redis.SetLogger), so the binary calls this once.
func SetRedisLogger(log *slog.Logger) {
	redis.SetLogger(redisLogger{log: log})
}
