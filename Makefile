# Every task a developer needs. `make help` lists them.
GO       ?= go
GOFLAGS  ?=
export GOMAXPROCS ?= 2

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the tasks
	@awk 'BEGIN {FS = ":.*## "} /^[a-z][a-z-]*:.*## / {printf "  make %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: deps
deps: ## install the PostgreSQL server binaries and PgBouncer if this machine lacks them
	@./scripts/deps.sh

.PHONY: deps-test
deps-test: ## what deps installs, and Chromium for the browser tests
	@./scripts/deps.sh --browser

.PHONY: run
run: deps ## the main job: the shop platform on a private PostgreSQL, demo stores seeded (ADDR=127.0.0.1:8080)
	@echo "building the shop command (the first build downloads Go modules and takes a minute)"
	$(GO) run ./cmd/shop --addr $${ADDR:-127.0.0.1:8080}

.PHONY: demo
demo: deps ## the toolkit demo: one tenant per model on a private PostgreSQL, isolation shown
	@echo "building the landlord command (the first build downloads Go modules and takes a minute)"
	$(GO) run ./cmd/landlord demo

.PHONY: test
test: deps-test check ## gofmt, vet, every test with the race detector (browser tests in headless Chromium), then the quick benchmark suite once, 3 rounds a case
	$(GO) test -race -count=1 -timeout 20m ./...
	$(GO) run ./cmd/landlord bench --quick --rounds 3

.PHONY: bench
bench: deps ## the full benchmark suite, each case next to its baseline (about 40 minutes; the README's table)
	$(GO) run ./cmd/landlord bench

.PHONY: bench-quick
bench-quick: deps ## the benchmark suite on smaller data, about 4 minutes
	$(GO) run ./cmd/landlord bench --quick

.PHONY: fuzz
fuzz: ## fuzz slugs, identifiers, hosts and JWTs for a while each (FUZZTIME=1m)
	$(GO) test -run '^$$' -fuzz FuzzNormalizeSlug -fuzztime $${FUZZTIME:-1m} ./tenant/
	$(GO) test -run '^$$' -fuzz FuzzCheckIdent -fuzztime $${FUZZTIME:-1m} ./tenant/
	$(GO) test -run '^$$' -fuzz FuzzNormalizeHost -fuzztime $${FUZZTIME:-1m} ./httptenant/
	$(GO) test -run '^$$' -fuzz FuzzResolveHost -fuzztime $${FUZZTIME:-1m} ./httptenant/
	$(GO) test -run '^$$' -fuzz FuzzJWT -fuzztime $${FUZZTIME:-1m} ./httptenant/

.PHONY: fuzz-leaks
fuzz-leaks: deps ## the pool-leak fuzz at length (LANDLORD_FUZZ_OPS, default 100000; make test runs 24000)
	LANDLORD_FUZZ_OPS=$${LANDLORD_FUZZ_OPS:-100000} $(GO) test -race -count=1 -run TestLeakFuzz -timeout 60m -v ./landlordtest/

GREMLINS_VERSION ?= v0.6.0
GREMLINS ?= $(shell $(GO) env GOPATH)/bin/gremlins

.PHONY: mutate
mutate: ## mutation pass over the isolation code, as in SECURITY.md "Mutation pass" (not in CI; about 15 minutes)
	@test -x $(GREMLINS) || $(GO) install github.com/go-gremlins/gremlins/cmd/gremlins@$(GREMLINS_VERSION)
	$(GREMLINS) unleash --workers 2 --timeout-coefficient 10 ./internal/traffic
	$(GREMLINS) unleash --workers 2 --timeout-coefficient 10 -E '^(cache|host|jwt|limits|resolver|slug)\.go$$' ./httptenant

.PHONY: build
build: ## build the shop and landlord commands into bin/
	$(GO) build -o bin/shop ./cmd/shop
	$(GO) build -o bin/landlord ./cmd/landlord

.PHONY: fmt
fmt: ## format the code
	gofmt -w $$(git ls-files '*.go')

.PHONY: check
check: ## gofmt and go vet, as CI does
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...
