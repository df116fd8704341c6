package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Defaults for Config; each applies when its field is zero.
const (
	// DefaultName is the cluster name (XMPPGW_CLUSTER), the prefix of every key.
	DefaultName = "xmppgw"
	// DefaultLeaseRenew is how often a node renews its heartbeat (issue 17).
	DefaultLeaseRenew = 2 * time.Second
	// DefaultLeaseTTL is how long a heartbeat lives unrenewed: five missed
	// renewals before the node counts as dead.
	DefaultLeaseTTL = 10 * time.Second
	// DefaultReplayWindow matches sse.DefaultReplaySize (XMPPGW_SSE_REPLAY).
	DefaultReplayWindow = 1024
	// DefaultHistoryTTL is how long a stream's log outlives its last event;
	// after that the next publish starts a new epoch.
	DefaultHistoryTTL = 24 * time.Hour
	// DefaultPingInterval is how often the Hub pings its pub/sub connection;
	// three intervals without any reply and it reconnects.
	DefaultPingInterval = time.Second
	// DefaultSubscriptionBuffer is a Subscription's queue length, as
	// sse.DefaultQueueSize.
	DefaultSubscriptionBuffer = 256
)

// Sentinel errors returned by this package.
var (
	// ErrFenced means the caller's LeaseFence no longer matches the stream's
	// record: another node claimed the stream (or a newer lease was taken), so
	// the caller must stop acting as its owner.
	ErrFenced = errors.New("cluster: lease fence is stale: the stream has another owner")
	// ErrNotFastpathLeader means the engine a call ran on no longer runs
	// the cluster's workgroup queues (its node stepped down meanwhile), so
	// what the call changed is not the cluster's.
	ErrNotFastpathLeader = errors.New("cluster: this node no longer runs the workgroup queues")
	// ErrNotRegistered means the stream has no record in Redis (never
	// registered, unregistered, or lost with Redis's data).
	ErrNotRegistered = errors.New("cluster: stream is not registered")
	// ErrStreamExists means Register found a record for that stream id.
	ErrStreamExists = errors.New("cluster: stream is already registered")
	// ErrUserCap means the user holds Caps.PerUser streams cluster-wide.
	ErrUserCap = errors.New("cluster: too many streams for this user")
	// ErrTotalCap means the cluster holds Caps.Total streams.
	ErrTotalCap = errors.New("cluster: too many streams in the cluster")
	// ErrClaimLost means Claim found the stream no longer owned by the node
	// it was to be taken from: another survivor claimed it first.
	ErrClaimLost = errors.New("cluster: stream was claimed by another node")
	// ErrStreamEnded means the stream's event log ends with the end marker
	// its owner wrote when the stream closed (Relay.Acquire).
	ErrStreamEnded = errors.New("cluster: the stream has ended")
	// ErrClosed means the Hub (or a Subscription) was closed.
	ErrClosed = errors.New("cluster: closed")
)

// Config configures a Cluster. The zero value of each field means its default.
type Config struct {
	// Name is the cluster name (XMPPGW_CLUSTER), used as the key prefix;
	// letters, digits, '.', '_' and '-' only. Default DefaultName.
	Name string
	// Node is this node's id, unique per process run (a restarted node is a
	// new node: its old leases must not validate it). Default: host name
	// plus random hex.
	Node string
	// Advertise is the address other nodes reach this node's internal
	// listener at (XMPPGW_CLUSTER_LISTEN, host:port, advertised as is); it
	// is the heartbeat key's value. "" = none yet.
	Advertise string
	// LeaseRenew is the heartbeat renew interval. Default DefaultLeaseRenew.
	LeaseRenew time.Duration
	// LeaseTTL is the heartbeat lifetime; must exceed LeaseRenew. Default
	// DefaultLeaseTTL.
	LeaseTTL time.Duration
	// ReplayWindow is how many events each stream's log keeps
	// (XMPPGW_SSE_REPLAY). Default DefaultReplayWindow.
	ReplayWindow int
	// HistoryTTL is how long a log outlives its last event. Default
	// DefaultHistoryTTL.
	HistoryTTL time.Duration
	// PingInterval is the Hub's pub/sub liveness check. Default
	// DefaultPingInterval.
	PingInterval time.Duration
}

var namePattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// CheckConfig reports what Open would refuse in cfg (the cluster name, the
// node id, the lease times), so a binary can say so with its other
// configuration errors.
func CheckConfig(cfg Config) error {
	_, err := cfg.withDefaults()
	return err
}

func (c Config) withDefaults() (Config, error) {
	if c.Name == "" {
		c.Name = DefaultName
	}
	if !namePattern.MatchString(c.Name) {
		// '{' or '}' in the prefix would move the hash tag off the stream id.
		return c, fmt.Errorf("cluster: invalid cluster name %q (XMPPGW_CLUSTER: letters, digits, '.', '_', '-')", c.Name)
	}
	if c.Node == "" {
		host, _ := os.Hostname()
		c.Node = sanitizeNode(host) + "-" + randomHex(6)
	}
	if strings.ContainsAny(c.Node, "{}, ") {
		return c, fmt.Errorf("cluster: invalid node id %q", c.Node)
	}
	setDefault(&c.LeaseRenew, DefaultLeaseRenew)
	setDefault(&c.LeaseTTL, DefaultLeaseTTL)
	setDefault(&c.HistoryTTL, DefaultHistoryTTL)
	setDefault(&c.PingInterval, DefaultPingInterval)
	if c.ReplayWindow <= 0 {
		c.ReplayWindow = DefaultReplayWindow
	}
	if c.LeaseTTL <= c.LeaseRenew {
		return c, fmt.Errorf("cluster: lease TTL %v must exceed the renew interval %v", c.LeaseTTL, c.LeaseRenew)
	}
	return c, nil
}

func setDefault(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

func sanitizeNode(host string) string {
	host = strings.Map(func(r rune) rune {
		if r == '{' || r == '}' || r == ',' || r == ' ' {
			return '-'
		}
		return r
	}, host)
	if host == "" {
		return "node"
	}
	return host
}

// Cluster is one node's handle on the cluster's Redis: the client, the key
// layout and the configuration. Its methods are safe for concurrent use.
type Cluster struct {
	rdb  redis.UniversalClient
	keys Keys
	cfg  Config
	own  bool // Close closes rdb
	// trips times every command and pipeline (a go-redis hook), for /metrics.
	trips *roundTrips
}

// Open parses a Redis URL (see NewClient), connects, checks the server
// answers PING within ctx, and returns the node's Cluster.
func Open(ctx context.Context, redisURL string, cfg Config) (*Cluster, error) {
	rdb, err := NewClient(redisURL)
	if err != nil {
		return nil, err
	}
	c, err := New(rdb, cfg)
	if err != nil {
		_ = rdb.Close()
		return nil, err
	}
	c.own = true
	if err := rdb.Ping(ctx).Err(); err != nil {
		_ = rdb.Close()
		return nil, fmt.Errorf("cluster: redis ping: %w", err)
	}
	return c, nil
}

// New returns a Cluster on an existing client, which the caller closes.
func New(rdb redis.UniversalClient, cfg Config) (*Cluster, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	c := &Cluster{rdb: rdb, keys: Keys{prefix: cfg.Name}, cfg: cfg, trips: newRoundTrips()}
	if rdb != nil { // nil only where a test checks the configuration alone
		rdb.AddHook(c.trips)
	}
	return c, nil
}

// Close closes the Redis client if Open created it.
func (c *Cluster) Close() error {
	if !c.own {
		return nil
	}
	return c.rdb.Close()
}

// Node is this node's id.
func (c *Cluster) Node() string { return c.cfg.Node }

// Config returns the configuration with defaults applied.
func (c *Cluster) Config() Config { return c.cfg }

// Keys returns the key layout.
func (c *Cluster) Keys() Keys { return c.keys }

// Redis returns the client, for the rate limiter (redis_rate) and /readyz.
func (c *Cluster) Redis() redis.UniversalClient { return c.rdb }

// NewClient builds the one client type for all three deployments from a URL
// (XMPPGW_REDIS_URL):
//
//	redis://[user:pass@]host:port/db           one server (also rediss://, unix://)
//	redis://host:port/db?master_name=M&addr=h2:p2  Sentinel: the host and every addr are sentinels
//	redis+cluster://host:port?addr=h2:p2       Redis Cluster seed nodes (also rediss+cluster://)
//
// Query options are go-redis's (dial_timeout, pool_size, ...). Context
// deadlines are always honoured (go-redis's ContextTimeoutEnabled): the
// lease renewal and the cross-node paths bound their waits with them, and
// a hung Redis must not hold a caller for ReadTimeout plus retries.
func NewClient(redisURL string) (redis.UniversalClient, error) {
	u, err := url.Parse(redisURL)
	if err != nil {
		return nil, fmt.Errorf("cluster: redis URL: %w", err)
	}
	switch {
	case u.Scheme == "redis+cluster" || u.Scheme == "rediss+cluster":
		u.Scheme = strings.TrimSuffix(u.Scheme, "+cluster")
		opt, err := redis.ParseClusterURL(u.String())
		if err != nil {
			return nil, fmt.Errorf("cluster: redis cluster URL: %w", err)
		}
		opt.ContextTimeoutEnabled = true
		return redis.NewClusterClient(opt), nil
	case u.Query().Has("master_name"):
		opt, err := redis.ParseFailoverURL(redisURL)
		if err != nil {
			return nil, fmt.Errorf("cluster: redis sentinel URL: %w", err)
		}
		opt.ContextTimeoutEnabled = true
		return redis.NewFailoverClient(opt), nil
	default:
		opt, err := redis.ParseURL(redisURL)
		if err != nil {
			return nil, fmt.Errorf("cluster: redis URL: %w", err)
		}
		opt.ContextTimeoutEnabled = true
		return redis.NewClient(opt), nil
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand panics instead, Go 1.24+)
	return hex.EncodeToString(b)
}

// scriptError maps a Lua error_reply to a sentinel. Scripts answer with a
// one-word code first ("FENCED ...") so nothing depends on message wording.
func scriptError(err error) error {
	if err == nil {
		return nil
	}
	// Redis 7 prefixes script errors without an error code of their own
	// with "ERR ".
	msg := strings.TrimPrefix(err.Error(), "ERR ")
	for code, sentinel := range map[string]error{
		"FENCED": ErrFenced, "NOTREG": ErrNotRegistered, "EXISTS": ErrStreamExists,
		"USERCAP": ErrUserCap, "TOTALCAP": ErrTotalCap, "CLAIMLOST": ErrClaimLost,
	} {
		if strings.HasPrefix(msg, code+" ") || msg == code {
			return sentinel
		}
	}
	return err
}
