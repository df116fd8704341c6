# xmppgw — typical commands first. `make` alone prints this help.
SWAG_VERSION := v1.16.6
SWAG := go run github.com/swaggo/swag/cmd/swag@$(SWAG_VERSION)
SWAG_ARGS := init -g doc.go -d api,gateway --parseInternal --outputTypes json,yaml,go --packageName openapi
DEV_DIR := .dev
GO_TEST_FLAGS ?= -race -count=1 -timeout 12m

.PHONY: help deps build run test test-unit vet fmt fmt-check openapi openapi-check clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

deps: ## install what the tests and `make run` need (Prosody from Debian)
	@bash scripts/install-deps.sh

build: ## build bin/xmppgw
	CGO_ENABLED=0 go build -trimpath -o bin/xmppgw ./cmd/xmppgw

run: deps ## start a local Prosody (alice, bob, carol / demo) and the gateway on 127.0.0.1:8080
	@bash scripts/run-dev.sh

test: deps fmt-check vet openapi-check ## everything CI runs: format, vet, spec drift, unit + integration tests with -race
	go test $(GO_TEST_FLAGS) ./...

test-unit: ## only the packages whose tests need no Prosody
	go test $(GO_TEST_FLAGS) ./sse/ ./gateway/ ./cmd/xmppgw/

vet: ## go vet
	go vet ./...

fmt: ## gofmt the tree
	gofmt -s -w $$(git ls-files '*.go')

fmt-check: ## fail if gofmt would change anything
	@out=$$(gofmt -s -l $$(git ls-files '*.go' | grep -v '^openapi/')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

openapi: ## regenerate openapi/ from the swag annotations
	$(SWAG) fmt -d api
	$(SWAG) $(SWAG_ARGS) -o openapi

openapi-check: ## fail if openapi/ is stale
	@tmp=$$(mktemp -d); $(SWAG) $(SWAG_ARGS) -o $$tmp >/dev/null 2>&1 || { echo "swag failed"; exit 1; }; \
	  for f in swagger.json swagger.yaml docs.go; do diff -q $$tmp/$$f openapi/$$f >/dev/null || { echo "openapi/$$f is stale: run 'make openapi'"; rm -rf $$tmp; exit 1; }; done; \
	  rm -rf $$tmp; echo "openapi/ is up to date"

clean: ## remove build output and the dev Prosody data
	rm -rf bin $(DEV_DIR)
