# neonauth: `make run` starts the service on the embedded defaults; `make test` runs every test.

GO ?= go
BIN := bin/neonauth

.PHONY: all build run test test-go test-fuzz test-e2e node-deps deps deps-test vet fmt fuzz bench clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/neonauth

deps:
	@bash scripts/install-deps.sh postgres

deps-test:
	@bash scripts/install-deps.sh test

# Starts the service with the defaults: data in ./.neonauth, managed PostgreSQL, on
# 127.0.0.1:8080. The first start writes the admin API key to ./.neonauth/api-key.
run: deps build
	$(BIN) serve

test: deps-test build vet node-deps test-go test-fuzz test-e2e

# The pinned Node packages of the client tests; e2e/neon also ships Neon's OpenAPI document,
# which the Go tests validate every /api/v2 exchange against.
node-deps:
	cd e2e && npm ci --no-audit --no-fund --ignore-scripts
	cd e2e/neon && npm ci --no-audit --no-fund

vet:
	$(GO) vet ./...

test-go:
	NEONAUTH_REQUIRE_BROWSER=1 NEONAUTH_REQUIRE_SPEC=1 $(GO) test -race -count=1 -timeout 30m ./...

# The official clients against a real neonauth: the Stack Auth SDK (e2e/) and Neon's
# api-client, @neon/sdk and neonctl (e2e/neon/).
test-e2e: build
	NEONAUTH_BIN=$(abspath $(BIN)) bash e2e/run.sh
	NEONAUTH_BIN=$(abspath $(BIN)) bash e2e/neon/run.sh

# Every fuzz target for 5 seconds: part of make test.
test-fuzz:
	bash scripts/fuzz.sh 5

# Longer fuzzing on demand: FUZZSECONDS each (make fuzz FUZZSECONDS=300).
FUZZSECONDS ?= 60
fuzz:
	bash scripts/fuzz.sh $(FUZZSECONDS)

# Benchmarks; results and how to read them are in docs/benchmarks.md.
bench: build
	$(GO) test -run '^$$' -bench . -benchtime 3s ./bench/

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin
