# Build, test and run the stock-quote service pair. `make help` lists targets.
SHELL := /usr/bin/env bash
.DEFAULT_GOAL := help

GO      ?= go
BIN     ?= bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
PKGS    := ./...
FUZZTIME ?= 30s
SOAK_DURATION ?= 5m

.PHONY: help build test test-unit check-services lint run fuzz soak soak-cluster clean bench bench-quick

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

build: ## build apiservice, stockservice and fakestooq into ./bin
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./apiservice ./stockservice ./fakestooq

test: test-deps check-services ## every test (unit, integration, end-to-end, faults, deployment checks, benchmark smoke run) with the race detector
	$(GO) test -race -count=1 -tags integration -timeout 15m $(PKGS)
	cd tests && $(GO) test -race -count=1 -tags integration -timeout 20m $(PKGS)
	@$(MAKE) --no-print-directory test-deploy

test-unit: ## unit tests only: no PostgreSQL or RabbitMQ needed
	$(GO) test -race -count=1 $(PKGS)
	cd tests && $(GO) test -race -count=1 $(PKGS)

.PHONY: test-deps
test-deps: ## as root on Debian/Ubuntu install and start what make test needs; otherwise stop with the command to run
	@scripts/setup-test-deps.sh

check-services: ## say whether the PostgreSQL and RabbitMQ the tests use are reachable
	@scripts/check-services.sh

lint: ## gofmt, go vet (both build tags) of the services' module and the tests' module
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) vet -tags integration $(PKGS)
	cd tests && $(GO) vet $(PKGS) && $(GO) vet -tags integration $(PKGS)

run: build ## run fake stooq + both services locally (Ctrl-C stops all)
	@scripts/run-local.sh

fuzz: ## run every fuzz target for FUZZTIME each (default 30s)
	@scripts/fuzz.sh $(FUZZTIME)

BENCH_FLAGS ?=
bench: check-services ## full benchmark (several minutes; 10M history rows); results to bench-results.md, see docs/performance.md
	cd tests/bench && $(GO) run . -out ../../bench-results.md $(BENCH_FLAGS)

bench-quick: check-services ## benchmark smoke run: tiny sizes, 1s per scenario
	cd tests/bench && $(GO) run . -quick $(BENCH_FLAGS)

soak: check-services ## the fault soak test for SOAK_DURATION (default 5m; 30s inside make test)
	cd tests && SOAK_DURATION=$(SOAK_DURATION) $(GO) test -race -count=1 -tags integration -timeout 60m -run '^TestSoak$$' -v ./faults/

soak-cluster: check-services ## TestCluster (own 3-node RabbitMQ cluster, node kills and cuts) repeated for SOAK_DURATION (one round inside make test)
	cd tests && CLUSTER_SOAK_DURATION=$(SOAK_DURATION) $(GO) test -race -count=1 -tags integration -timeout 90m -run '^TestCluster$$' -v ./faults/

clean: ## remove build output
	rm -rf $(BIN)

# ---- Shipping: images, and offline checks of Dockerfile, compose, chart, Jenkinsfile ----
IMAGE_REGISTRY ?= stockquote
IMAGE_TAG      ?= $(COMMIT)
IMAGE_SERVICES := apiservice stockservice

.PHONY: test-deploy images manifests test-live

test-deploy: ## offline checks: Dockerfile, docker-compose.yml, Helm chart (deploy/check) and Jenkinsfile (npm-groovy-lint)
	cd deploy/check && $(GO) vet ./... && $(GO) test -race -count=1 ./...
	cd deploy && { [ -x node_modules/.bin/npm-groovy-lint ] || npm ci --no-audit --no-fund; } && \
	  npx --no-install npm-groovy-lint --noserver --failon warning --no-insight ../Jenkinsfile

images: ## docker build the apiservice and stockservice images as $(IMAGE_REGISTRY)/NAME:$(IMAGE_TAG) (needs a Docker engine)
	@for s in $(IMAGE_SERVICES); do \
	  echo "docker build $(IMAGE_REGISTRY)/$$s:$(IMAGE_TAG)"; \
	  docker build $(DOCKER_BUILD_FLAGS) --build-arg SERVICE=$$s --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) \
	    -t $(IMAGE_REGISTRY)/$$s:$(IMAGE_TAG) . || exit 1; \
	done

manifests: ## re-render the plain Kubernetes manifests in deploy/kubernetes/ from the chart (run after chart changes; commit the result)
	cd deploy/check && $(GO) run ./cmd/render-manifests -root ../..

# ---- Live deployment: a real container engine and Kubernetes API server ----
STOCKQUOTE_LIVE_CACHE ?= /var/cache/stockquote-live

test-live: ## as root: install what it needs (deploy/live/setup-deps.sh), build the images and run compose on a real dockerd, the chart, plain manifests, ArgoCD and the Jenkinsfile on a real kube-apiserver (docs/deployment.md)
	STOCKQUOTE_LIVE_CACHE=$(STOCKQUOTE_LIVE_CACHE) deploy/live/run.sh
