# xmppgw — typical commands first. `make` alone prints this help.
SWAG_VERSION := v1.16.6
SWAG := go run github.com/swaggo/swag/cmd/swag@$(SWAG_VERSION)
SWAG_ARGS := init -g doc.go -d api,gateway,fastpath --parseInternal --outputTypes json,yaml,go --packageName openapi
DEV_DIR := .dev
GO_TEST_FLAGS ?= -race -count=1 -timeout 12m
# Integration packages that run once per supported XMPP server (issue 23):
# the REST/SSE suite and the cluster tests (~1.5 min more on ejabberd);
# every other package runs once, on Prosody.
XMPP_PKGS := ./api/ ./cmd/xmppgw/

.PHONY: help deps build run test test-ejabberd test-unit test-e2e e2e-deps swagger-ui docker vet fmt fmt-check openapi openapi-check clean fuzz js-deps js-types js-build js-check test-js

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

deps: ## install what the tests and `make run` need (Prosody, ejabberd and Redis from Debian)
	@bash scripts/install-deps.sh prosody redis ejabberd

build: ## build bin/xmppgw
	CGO_ENABLED=0 go build -trimpath -o bin/xmppgw ./cmd/xmppgw

run: deps ## start a local Prosody (alice, bob, carol / demo) and the gateway on 127.0.0.1:8080
	@bash scripts/run-dev.sh

test: deps fmt-check vet openapi-check js-check bench-smoke test-e2e test-js ## everything CI runs: format, vet, spec drift, JS client, browser tests, unit + integration tests with -race on Prosody and ejabberd
	XMPPGW_TEST_XMPP=prosody go test $(GO_TEST_FLAGS) ./...
	XMPPGW_TEST_XMPP=ejabberd go test $(GO_TEST_FLAGS) $(XMPP_PKGS)

test-ejabberd: ## only the integration tests on ejabberd (and the ejabberd harness's own)
	@bash scripts/install-deps.sh ejabberd
	XMPPGW_TEST_XMPP=ejabberd go test $(GO_TEST_FLAGS) $(XMPP_PKGS) ./internal/ejabberd/ ./internal/testxmpp/

test-unit: ## only the packages whose tests need no Prosody
	go test $(GO_TEST_FLAGS) ./sse/ ./gateway/ ./cmd/xmppgw/

test-e2e: deps e2e-deps ## browser tests of / and /docs/ in headless chromium (screenshots in e2e/artifacts/)
	cd e2e && node --test --test-concurrency=1 --test-timeout=120000 .

e2e-deps: e2e/node_modules/.package-lock.json ## install chromium (Debian) and the pinned node modules (npm ci)
	@bash scripts/install-deps.sh chromium

# npm ci only when the lock file changed; --ignore-scripts: no package runs
# code at install time (swagger-ui-dist's analytics dependency would).
e2e/node_modules/.package-lock.json: e2e/package.json e2e/package-lock.json
	cd e2e && SCARF_ANALYTICS=false npm ci --ignore-scripts --no-audit --no-fund

# --- the JavaScript/TypeScript client (clients/js, issue 21) ---
# Its build is checked in under web/ui/xmppgw/ (the demo page imports it), so
# `go build` needs no npm; js-check fails when that copy, the generated types
# or the package's file list are stale.
JS := clients/js
JS_WEB := web/ui/xmppgw
js-deps: $(JS)/node_modules/.package-lock.json ## install the client's pinned dev dependencies (npm ci)

$(JS)/node_modules/.package-lock.json: $(JS)/package.json $(JS)/package-lock.json
	cd $(JS) && npm ci --ignore-scripts --no-audit --no-fund

js-types: js-deps ## regenerate clients/js/src/generated/openapi.ts from openapi/swagger.json
	cd $(JS) && node scripts/gen-types.mjs

js-build: js-deps ## compile clients/js (dist/) and refresh its copy in web/ui/xmppgw/
	cd $(JS) && rm -rf dist && node_modules/.bin/tsc -p tsconfig.json
	rm -rf $(JS_WEB) && mkdir -p $(JS_WEB) && cp $(JS)/dist/*.js $(JS_WEB)/
	cd $(JS) && npm pack --dry-run --json --ignore-scripts 2>/dev/null | node scripts/pack-files.mjs > pack-files.txt

js-check: js-deps ## fail if the client's generated types, web/ui/xmppgw/ or pack-files.txt are stale, or its type checks fail
	@cd $(JS) && node scripts/gen-types.mjs --check
	@cd $(JS) && node_modules/.bin/tsc -p tsconfig.check.json && echo "clients/js type checks pass (test/types.check.ts)"
	@tmp=$$(mktemp -d); cd $(JS) && node_modules/.bin/tsc -p tsconfig.json --outDir $$tmp || { rm -rf $$tmp; exit 1; }; \
	  cd ../..; if ! diff -r -q -x generated -x '*.d.ts' $$tmp $(JS_WEB) >/dev/null; then echo "$(JS_WEB)/ is stale: run 'make js-build'"; diff -r -q -x generated -x '*.d.ts' $$tmp $(JS_WEB); rm -rf $$tmp; exit 1; fi; \
	  rm -rf $(JS)/dist && mv $$tmp $(JS)/dist; echo "$(JS_WEB)/ is up to date"
	@cd $(JS) && npm pack --dry-run --json --ignore-scripts 2>/dev/null | node scripts/pack-files.mjs --check pack-files.txt

# Node 20 has a global WebSocket only with this flag (Node 22 has it anyway).
NODE_WS_FLAG = $(shell node -e "process.exit(typeof WebSocket === 'undefined' ? 0 : 1)" 2>/dev/null && echo --experimental-websocket)
test-js: deps js-deps e2e-deps ## the client's tests: Node against a real gateway + Prosody (+ Redis), and headless chromium
	cd $(JS) && rm -rf dist && node_modules/.bin/tsc -p tsconfig.json
	cd $(JS) && node $(NODE_WS_FLAG) --test --test-concurrency=1 --test-timeout=120000 test/client.test.mjs test/restart.test.mjs test/browser.test.mjs

SWAGGER_UI_FILES := swagger-ui-bundle.js swagger-ui-bundle.js.LICENSE.txt swagger-ui.css LICENSE NOTICE favicon-32x32.png
swagger-ui: e2e/node_modules/.package-lock.json ## re-vendor web/swagger/ from the swagger-ui-dist pinned in e2e/package.json
	cd e2e/node_modules/swagger-ui-dist && cp $(SWAGGER_UI_FILES) ../../../web/swagger/
	@echo "now set web.SwaggerUIVersion to $$(node -p 'require("./e2e/node_modules/swagger-ui-dist/package.json").version')"

docker: ## build the container image xmppgw:dev
	docker build --build-arg VERSION=$$(git describe --tags --always --dirty 2>/dev/null || echo dev) -t xmppgw:dev .

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

# --- benchmarks (issue 9): the gateway against direct XMPP, same run, same Prosody ---
.PHONY: bench bench-smoke
BENCH_FLAGS ?= -runs 3 -scale-runs 4 -pairs 1,8 -window 64 -scale 1000,5000,9000 -fanout 1,100,1000,10000 -fanout-reader epoll,http -room-fanout 10,100,1000 -profile bench-profiles

bench: deps ## the real benchmark runs (~28 min, run on a quiet box): docs/BENCHMARKS.md + docs/benchmarks.json
	CGO_ENABLED=0 go build -trimpath -o bin/xmppgw-bench ./cmd/xmppgw-bench
	CGO_ENABLED=0 go build -trimpath -o bin/xmppgw ./cmd/xmppgw
	@echo "machine: $$(nproc) cores; $$(free -h | awk '/^Mem:/{print $$2}') RAM; $$(go version); $$(prosodyctl about 2>/dev/null | grep -m1 '^Prosody'); load: $$(cut -d' ' -f1-3 /proc/loadavg)"
	bin/xmppgw-bench $(BENCH_FLAGS) -gateway-bin bin/xmppgw -json docs/benchmarks.json -md docs/BENCHMARKS.md

bench-smoke: deps ## a few-seconds end-to-end run of the bench tool (part of `make test`)
	@tmp=$$(mktemp -d); go build -o $$tmp/xmppgw-bench ./cmd/xmppgw-bench && go build -o $$tmp/xmppgw ./cmd/xmppgw && \
	  $$tmp/xmppgw-bench -smoke -gateway-bin $$tmp/xmppgw -json $$tmp/smoke.json > $$tmp/out.txt 2>&1; rc=$$?; \
	  if [ $$rc -ne 0 ]; then cat $$tmp/out.txt; else tail -n 1 $$tmp/out.txt; fi; rm -rf $$tmp; exit $$rc

fuzz: ## run every fuzz target for FUZZTIME each (default 15s); keeps new corpus entries
	@bash scripts/fuzz.sh
