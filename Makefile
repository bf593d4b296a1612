# Hookline — run `make help` for the targets.
SHELL := /bin/bash
MODULES := proto pkg services
GO ?= go
BIN := $(CURDIR)/bin
DATA_DIR ?= .hookline
TEST_FLAGS ?= -race -count=1 -timeout 15m

.DEFAULT_GOAL := help

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build the hookline CLI and the service binaries into ./bin.
	@mkdir -p $(BIN)
	cd services && $(GO) build -o $(BIN)/ ./cmd/...

.PHONY: run
run: build ## Run the whole pipeline locally (embedded NATS JetStream + SQLite in $(DATA_DIR)).
	$(BIN)/hookline dev --data-dir $(DATA_DIR)

.PHONY: test
test: ## Run every module's tests with the race detector.
	@set -e; for m in $(MODULES); do echo "== go test $$m"; (cd $$m && $(GO) test $(TEST_FLAGS) ./...); done
	@echo "== go test crdbcompat"; cd crdbcompat && GOWORK=off $(GO) test $(TEST_FLAGS) ./...

.PHONY: vet
vet: ## go vet every module.
	@set -e; for m in $(MODULES); do (cd $$m && $(GO) vet ./...); done

.PHONY: proto
proto: ## Lint the protos and regenerate Go, gateway and OpenAPI code (tools pinned, built locally).
	./scripts/proto.sh

.PHONY: docs
docs: ## Regenerate docs/configuration.md from the binaries' flags.
	cd services && $(GO) run ./internal/configdoc/gen -o $(CURDIR)/docs/configuration.md

.PHONY: verify
verify: vet ## Fail if generated code or docs are stale, code is unformatted or go.mod files are untidy.
	./scripts/proto-verify.sh
	@tmp=$$(mktemp) && trap 'rm -f "$$tmp"' EXIT && \
	  (cd services && $(GO) run ./internal/configdoc/gen -o "$$tmp") && \
	  { diff -u docs/configuration.md "$$tmp" || { echo "docs/configuration.md is stale: run make docs"; exit 1; }; }
	@test -z "$$(gofmt -l $(MODULES))" || { echo "gofmt needed:"; gofmt -l $(MODULES); exit 1; }
	@set -e; for m in $(MODULES); do (cd $$m && $(GO) mod tidy -diff) || { echo "go.mod of $$m is not tidy: run go mod tidy in $$m"; exit 1; }; done
	@cd crdbcompat && { test -z "$$(gofmt -l .)" || { echo "gofmt needed:"; gofmt -l .; exit 1; }; } && GOWORK=off $(GO) vet ./... && { GOWORK=off $(GO) mod tidy -diff || { echo "go.mod of crdbcompat is not tidy: run GOWORK=off go mod tidy in crdbcompat"; exit 1; }; }

.PHONY: fuzz
fuzz: ## Run each fuzz target for FUZZTIME (default 20s).
	@set -e; for target in pkg:./signature pkg:./ssrf pkg:./retry pkg:./eventtype pkg:./keyring services:./internal/wire services:./internal/apikey services:./ingest; do \
	  mod=$${target%%:*}; pkg=$${target#*:}; \
	  for f in $$(cd $$mod && $(GO) test -list 'Fuzz.*' $$pkg | grep ^Fuzz); do \
	    (cd $$mod && $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $${FUZZTIME:-20s} $$pkg); done; done

.PHONY: chaos
chaos: ## Chaos soak: the multi-process stack under load for CHAOS_DURATION (default 10m), killing a process every 10-30 s; CHAOS_TRANSPORT=kafka on kfake; ledger in chaos-report.json.
	cd services && HOOKLINE_CHAOS_DURATION=$${CHAOS_DURATION:-10m} HOOKLINE_CHAOS_TRANSPORT=$${CHAOS_TRANSPORT:-nats} HOOKLINE_CHAOS_REPORT=$(CURDIR)/chaos-report.json \
	  $(GO) test -count=1 -timeout 90m -run '^TestChaosSoak$$' -v ./e2e/multiprocess

.PHONY: bench
bench: ## Build the binaries and hookline-bench, run every benchmark scenario (~15 min), update docs/benchmarks.{md,json}.
	@mkdir -p $(BIN)
	cd services && $(GO) build -o $(BIN)/ ./cmd/... ./bench/cmd/hookline-bench
	$(BIN)/hookline-bench --hookline $(BIN)/hookline --results-dir bench-results \
	  --json docs/benchmarks.json --markdown docs/benchmarks.md $(BENCH_FLAGS)

.PHONY: bench-kafka
bench-kafka: ## As bench, on --transport kafka with a kfake-server process per scenario (kfake: a test broker, NOT Kafka); updates docs/benchmarks-kafka.json and the kfake section of docs/benchmarks.md.
	@mkdir -p $(BIN)
	cd services && $(GO) build -o $(BIN)/ ./cmd/... ./bench/cmd/hookline-bench github.com/hookline/hookline/pkg/transport/kafka/kafkatest/kfake-server
	$(BIN)/hookline-bench --hookline $(BIN)/hookline --transport kafka --kfake-server $(BIN)/kfake-server --results-dir bench-results \
	  --json docs/benchmarks-kafka.json --markdown docs/benchmarks.md $(BENCH_FLAGS)

.PHONY: clean
clean: ## Remove build output and the local data directory.
	rm -rf $(BIN) $(DATA_DIR)
