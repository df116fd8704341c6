# syntax=docker/dockerfile:1
# Multi-stage build: a static binary on distroless, running as non-root.
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
ENTRYPOINT ["/usr/local/bin/xmppgw"]
