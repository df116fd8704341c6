package api

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/xmppgw/xmppgw/gateway"
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
	return m
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
//	@Description	Streams by state, logins, XMPP reconnects, stanzas in/out, events published, slow subscribers evicted, SSE subscribers, HTTP requests and latency by route, Go runtime. On the main listener admin credentials are required; XMPPGW_METRICS_LISTEN serves them without auth on a separate (internal) address.
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
