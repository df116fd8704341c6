package api

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/xmppgw/xmppgw/openapi"
)

// HealthResponse reports liveness or readiness.
type HealthResponse struct {
	Status string `json:"status" example:"ok"`
}

// healthz godoc
//
//	@Summary	Liveness: the process is up
//	@Tags		health
//	@Produce	json
//	@Success	200	{object}	HealthResponse
//	@Router		/healthz [get]
func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) error {
	return writeOK(w, http.StatusOK, HealthResponse{Status: "ok"})
}

// readyz godoc
//
//	@Summary	Readiness: the XMPP server is reachable (and, in cluster mode, Redis and this node's lease)
//	@Tags		health
//	@Produce	json
//	@Success	200	{object}	HealthResponse
//	@Failure	503	{object}	ErrorResponse
//	@Router		/readyz [get]
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.streams.Ready(ctx); err != nil {
		return errNotReady.wrap("%v", err)
	}
	if s.cfg.ClusterReady != nil {
		if err := s.cfg.ClusterReady(ctx); err != nil {
			return errClusterNotReady.wrap("%v", err)
		}
	}
	return writeOK(w, http.StatusOK, HealthResponse{Status: "ok"})
}

// openAPISpec godoc
//
//	@Summary	This API's OpenAPI (Swagger 2.0) document
//	@Tags		health
//	@Produce	json
//	@Success	200	{object}	object
//	@Router		/openapi/swagger.json [get]
func (s *Server) openAPISpec(w http.ResponseWriter, _ *http.Request) error {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_, err := w.Write([]byte(specJSON()))
	return err
}

// specJSON is this API's OpenAPI document, rendered once: swag's
// Spec.ReadDoc rewrites the Spec's Description on every call (a data race
// between concurrent requests) and parses its template each time. Nothing
// changes openapi.SwaggerInfo after start-up.
var specJSON = sync.OnceValue(openapi.SwaggerInfo.ReadDoc)
