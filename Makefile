# Two commands on a fresh machine: `make up` runs the system, `make test` tests it.
# Each installs what it needs first (scripts/bootstrap.sh) or says what is missing.
SHELL := bash
.DEFAULT_GOAL := help

.PHONY: help up test test-backends watch clean-data schemas fmt dapr soak bench e2e-compose cluster-up cluster-down e2e-k8s

help: ## this list
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

up: ## run both services with their sidecars and Redis (BACKEND=postgres-kafka: PostgreSQL, Kafka; Ctrl-C stops all)
	@scripts/up.sh

test: ## lint, type-check and run every test (unit + integration on real daprd/Redis)
	@scripts/test.sh

test-backends: ## the integration tests again on PostgreSQL and Kafka instead of Redis
	@scripts/test-backends.sh

watch: ## follow the notifications of the stack that `make up` runs
	@scripts/watch.sh

clean-data: ## delete the tasks `make up` keeps in .run/ (asks nothing; stop make up first)
	@scripts/clean-data.sh

schemas: ## rewrite the committed JSON Schemas of libs/contracts from the models
	@source scripts/bootstrap.sh && "$$UV" run --frozen python -c \
	  'from pathlib import Path; from task_contracts.schemas import write_schemas; write_schemas(Path("libs/contracts/schemas"))'

fmt: ## format and autofix
	@source scripts/bootstrap.sh && "$$UV" run --frozen ruff format . && "$$UV" run --frozen ruff check --fix .

dapr: ## build or locate the pinned daprd and dapr CLI, print where they are
	@scripts/ensure-dapr.sh

soak: ## minutes of mixed traffic on the real stack, then an audit (SOAK_SECONDS=180 SOAK_CLIENTS=16)
	@source scripts/bootstrap.sh && "$$UV" run --frozen python bench/soak.py \
	  --seconds $(or $(SOAK_SECONDS),180) --clients $(or $(SOAK_CLIENTS),16)

bench: ## task-api under wrk load vs its sidecar's ceiling, each route with tracing off / as shipped / a naive seed app (CPU and sidecar calls per request), then event lag under load; bench/results/ (BACKEND=postgres-kafka too)
	@source scripts/bootstrap.sh && scripts/ensure-wrk.sh \
	  && export TASK_PLATFORM_BACKEND=$(or $(BACKEND),redis) \
	  && if [[ $$TASK_PLATFORM_BACKEND == postgres-kafka ]]; then \
	       export TASK_PLATFORM_KAFKA=$$(scripts/ensure-kafka.sh) || exit 1; fi \
	  && "$$UV" run --frozen python bench/run.py \
	  && "$$UV" run --frozen python bench/event_lag.py --seconds $(or $(LAG_SECONDS),60) \
	  && "$$UV" run --frozen python bench/backends.py

e2e-compose: ## the real docker-compose.yml in a real Docker engine, tested from outside (root; BACKEND=postgres-kafka too)
	@scripts/e2e-compose.sh

cluster-up: ## a local single-node Kubernetes cluster with Dapr (root; first run builds it)
	@scripts/cluster-up.sh

cluster-down: ## stop that cluster and put the host back as it was
	@scripts/cluster-down.sh

e2e-k8s: ## cluster-up, `tilt up` of the Tiltfile, contract/event/live-update tests, cluster-down (BACKEND=postgres-kafka too)
	@scripts/e2e-k8s.sh
