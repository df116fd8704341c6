package api

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/xmppgw/xmppgw/gateway"
	"github.com/xmppgw/xmppgw/internal/cluster"
)

// metrics are the Prometheus instruments of one Server. Gauges and
// counters owned by the gateway and the broker are read at scrape time
// from their Stats, so those packages stay free of Prometheus.
type metrics struct {
	registry *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	// forwarded counts requests handed to the stream's owner node.
	forwarded prometheus.Counter
}

func (s *Server) newMetrics() *metrics {
	reg := prometheus.NewRegistry()
	m := &metrics{registry: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "xmppgw_http_requests_total",
			Help: "HTTP requests by route pattern, method and status."}, []string{"route", "method", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "xmppgw_http_request_duration_seconds",
			Help: "HTTP request latency by route pattern (event streams count their whole life).", Buckets: prometheus.DefBuckets},
			[]string{"route", "method"}),
		forwarded: prometheus.NewCounter(prometheus.CounterOpts{Name: "xmppgw_cluster_forwarded_requests_total",
			Help: "Requests forwarded to the cluster node holding their stream."}),
	}
	reg.MustRegister(m.requests, m.latency, m.forwarded, collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	gw := func() gateway.Stats { return s.streams.Stats() }
	for _, state := range []string{gateway.StateOnline, gateway.StateReconnecting, gateway.StateOffline} {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "xmppgw_streams",
			Help: "Open streams by XMPP connection state.", ConstLabels: prometheus.Labels{"state": state}},
			func() float64 { return float64(gw().Streams[state]) }))
	}
	counter := func(name, help string, labels prometheus.Labels, read func() uint64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels},
			func() float64 { return float64(read()) }))
	}
	counter("xmppgw_logins_total", "XMPP logins by result.", prometheus.Labels{"result": "ok"}, func() uint64 { return gw().LoginsOK })
	counter("xmppgw_logins_total", "XMPP logins by result.", prometheus.Labels{"result": "failed"}, func() uint64 { return gw().LoginsFailed })
	counter("xmppgw_xmpp_reconnects_total", "XMPP connections restored after a drop.", nil, func() uint64 { return gw().Reconnects })
	counter("xmppgw_stanzas_total", "Stanzas by direction.", prometheus.Labels{"direction": "in"}, func() uint64 { return gw().StanzasIn })
	counter("xmppgw_stanzas_total", "Stanzas by direction.", prometheus.Labels{"direction": "out"}, func() uint64 { return gw().StanzasOut })
	counter("xmppgw_events_published_total", "Events published to streams.", nil, func() uint64 { return s.events.Stats().Published })
	counter("xmppgw_sse_evicted_total", "Event subscribers disconnected for falling behind.", nil, func() uint64 { return s.events.Stats().Evicted })
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "xmppgw_sse_subscribers",
		Help: "Open event stream subscribers."}, func() float64 { return float64(s.events.Stats().Subscribers) }))
	if read := s.cfg.ClusterStats; read != nil {
		counter("xmppgw_cluster_pubsub_reconnects_total", "Times this node replaced its Redis pub/sub connection.", nil,
			func() uint64 { return read().PubSubReconnects })
		counter("xmppgw_cluster_events_dropped_total", "Events lost because Redis stayed away while their stream's queue was full.", nil,
			func() uint64 { return read().EventsDropped })
		counter("xmppgw_cluster_events_provisional_total", "Events this node's subscribers got before Redis had them (Redis outage).", nil,
			func() uint64 { return read().EventsProvisional })
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "xmppgw_cluster_mirrored_streams",
			Help: "Streams whose Redis event log this node mirrors for its subscribers."}, func() float64 { return float64(read().Mirrored) }))
		reg.MustRegister(roundTripCollector{read: read, desc: prometheus.NewDesc("xmppgw_cluster_redis_round_trip_seconds",
			"Round trips of this node's Redis commands and pipelines (pub/sub excepted).", nil, nil)})
	}
	return m
}

// ClusterStats are the cluster figures /metrics shows (cluster mode).
type ClusterStats struct {
	RoundTrips       cluster.Histogram
	PubSubReconnects uint64
	EventsDropped    uint64
	// EventsProvisional counts events served to this node's subscribers
	// while Redis was down, before they reached the log.
	EventsProvisional uint64
	Mirrored          int
}

// roundTripCollector exports the cluster's round-trip histogram, kept by
// internal/cluster without Prometheus, at scrape time.
type roundTripCollector struct {
	read func() ClusterStats
	desc *prometheus.Desc
}

func (c roundTripCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c roundTripCollector) Collect(ch chan<- prometheus.Metric) {
	h := c.read().RoundTrips
	buckets := make(map[float64]uint64, len(cluster.RoundTripBuckets))
	for i, le := range cluster.RoundTripBuckets {
		if i < len(h.Buckets) {
			buckets[le] = h.Buckets[i]
		}
	}
	ch <- prometheus.MustNewConstHistogram(c.desc, h.Count, h.Sum, buckets)
}

// observe records one finished request.
func (m *metrics) observe(route, method string, status int, seconds float64) {
	m.requests.WithLabelValues(route, method, http.StatusText(status)).Inc()
	m.latency.WithLabelValues(route, method).Observe(seconds)
}

// MetricsHandler serves the Prometheus metrics without authentication,
// for a separate (internal) listener: XMPPGW_METRICS_LISTEN.
func (s *Server) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{})
}

// serveMetrics godoc
//
//	@Summary		Prometheus metrics (admin)
//	@Description	Streams by state, logins, XMPP reconnects, stanzas in/out, events published, slow subscribers evicted, SSE subscribers, HTTP requests and latency by route, Go runtime; in cluster mode also Redis round trips, pub/sub reconnects, mirrored streams, dropped events and forwarded requests. On the main listener admin credentials are required; XMPPGW_METRICS_LISTEN serves them without auth on a separate (internal) address.
//	@Tags			admin
//	@Produce		plain
//	@Success		200	{string}	string	"Prometheus text format"
//	@Failure		401	{object}	ErrorResponse
//	@Failure		403	{object}	ErrorResponse
//	@Security		BasicAuth
//	@Security		BearerAuth
//	@Router			/metrics [get]
func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request, _ *principal) error {
	s.MetricsHandler().ServeHTTP(w, r)
	return nil
}
