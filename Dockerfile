# syntax=docker/dockerfile:1
# Multi-stage build: a static binary on distroless, running as non-root.
# The web pages (demo chat, Swagger UI) are embedded in the binary: no node
# or npm at build time, nothing fetched at run time.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/xmppgw ./cmd/xmppgw

FROM gcr.io/distroless/static-debian12:nonroot
LABEL org.opencontainers.image.title="xmppgw" \
      org.opencontainers.image.description="REST + Server-Sent Events gateway over XMPP"
COPY --from=build /out/xmppgw /usr/local/bin/xmppgw
ENV XMPPGW_LISTEN=0.0.0.0:8080
EXPOSE 8080
USER nonroot:nonroot
# Distroless has no shell or curl: the binary probes its own /healthz
# (on loopback when XMPPGW_LISTEN is a wildcard) and exits 0 or 1.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/xmppgw", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/xmppgw"]
