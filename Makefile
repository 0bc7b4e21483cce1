# The two commands a newcomer needs: `make run` and `make test`.
SHELL := /bin/bash
GO ?= go

.PHONY: run test test-short test-kafka-cluster test-clickhouse-cluster race-ready deps-up deps-down deps-status kafka-cluster-up kafka-cluster-down clickhouse-cluster-up clickhouse-cluster-down build bench bench-ingest bench-consent bench-enricher bench-sink bench-erasure bench-pipeline bench-instructions fuzz lint clean

run: ## start deps and the three services, send demo events, show them; Ctrl-C stops
	scripts/run.sh

# deployments/ is a module of its own (its tests' Kubernetes API types stay
# out of the services' go.mod), which ./... does not reach: -C deployments.
test: deps-up race-ready ## unit tests under the race detector, then unit, integration and end-to-end tests against real Kafka and ClickHouse (and the SQL on a current ClickHouse engine: scripts/chdb.sh)
	$(GO) test -race -short -count=1 ./...
	$(GO) test -C deployments -race -short -count=1 ./...
	$(GO) test -count=1 -timeout 15m ./...
	$(GO) test -C deployments -count=1 ./...

# The replicated ClickHouse tests stop and start the cluster's processes,
# so they run only here (TEST_CLICKHOUSE_CLUSTER=1), never in `make test`.
test-clickhouse-cluster: deps-up ## the replicated ClickHouse tests (ZooKeeper, two 18.16 replicas) with their faults: replica SIGKILLed, ZooKeeper stopped, erasure and resume with a lagging replica (60-80 s); stops the cluster after if it started it
	@was_up=0; scripts/cluster/clickhouse.sh running && was_up=1; \
	scripts/deps.sh clickhouse-cluster up || exit 1; \
	TEST_CLICKHOUSE_CLUSTER=1 CI=true $(GO) test -count=1 -v -run '^(TestCluster|TestExactlyOnceCatches)' ./sink/chwriter/; rc=$$?; \
	[ $$was_up = 1 ] || scripts/deps.sh clickhouse-cluster down; exit $$rc

clickhouse-cluster-up: ## start ZooKeeper and two ClickHouse replicas of the cluster consentflow (scripts/cluster/clickhouse.sh: native 19000/19001)
	scripts/deps.sh clickhouse-cluster up

clickhouse-cluster-down: ## stop what clickhouse-cluster-up started
	scripts/deps.sh clickhouse-cluster down

test-short: race-ready ## unit tests only, under the race detector; needs no service
	$(GO) test -race -short ./...
	$(GO) test -C deployments -race -short ./...

# The race detector needs cgo, which Go turns off when it finds no C
# compiler; say so rather than let go test suggest CGO_ENABLED=1.
race-ready:
	@[ "$$($(GO) env CGO_ENABLED)" = 1 ] || { echo "the race detector needs cgo and a C compiler: apt-get install gcc" >&2; exit 1; }

build: ## build the services into bin/
	$(GO) build -o bin/ ./collector ./enricher ./sink ./scripts/loadgen

deps-up: ## install (if missing) and start Kafka and ClickHouse
	scripts/deps.sh up

deps-down: ## stop what deps-up started
	scripts/deps.sh down

deps-status:
	scripts/deps.sh status

kafka-cluster-up: ## start three Kafka brokers (KRaft) on 127.0.0.1:19092-19094; configs/cluster/kafka.env points the services at them
	scripts/deps.sh kafka-cluster up

kafka-cluster-down: ## stop what kafka-cluster-up started
	scripts/deps.sh kafka-cluster down

# Not in `make test`: three more brokers and a broker killed under load
# (70-85 s), on their own target, which CI runs too (.ci/run).
test-kafka-cluster: deps-up kafka-cluster-up ## the pipeline on the three-broker cluster with a broker SIGKILLed under load: every acknowledged event in ClickHouse exactly once
	TEST_KAFKA_CLUSTER_BROKERS=127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094 CI=true \
	  $(GO) test -count=1 -timeout 15m -run '^(TestKafkaCluster|TestDeliveredOnce)' -v ./e2e/

bench: deps-up bench-ingest bench-enricher bench-sink bench-erasure ## Go benchmarks against the real services, then the collector, enricher, sink and erasure load tests
	$(GO) test -run='^$$' -bench=. -benchmem ./...

bench-ingest: deps-up ## collector vs raw franz-go producer, minimal HTTP-to-Kafka relay and no-op HTTP (~2 min); read the ratios
	$(GO) run ./scripts/bench ingest $(INGESTBENCH_FLAGS)

bench-enricher: deps-up ## enricher (transactions, full policy) vs plain consume-then-produce on the same broker, alternating rounds; ENRICHERBENCH_FLAGS to change
	$(GO) run ./scripts/bench enricher $(ENRICHERBENCH_FLAGS)

bench-instructions: ## instructions per event of the enricher's processing (BenchmarkProcess, no Kafka) counted by callgrind: steadier than time on a shared machine (~2 min)
	scripts/instructions.sh

bench-sink: deps-up ## sink vs raw clickhouse-go insert of the same rows (alternating rounds), then freshness 200 -> queryable at 5,000 events/s (~3.5 min); SINKBENCH_FLAGS to change
	$(GO) run ./scripts/bench sink $(SINKBENCH_FLAGS)

bench-erasure: deps-up ## erasure latency p50/p99 (request -> verified deletion in both destinations) of 1,000 erasures over a minute at 5,000 events/s, and mutations per destination (~2.5 min); ERASUREBENCH_FLAGS to change
	$(GO) run ./scripts/bench erasure $(ERASUREBENCH_FLAGS)

bench-pipeline: deps-up ## the whole pipeline (collector, enricher, both sinks as processes) stepped up open-loop until it cannot keep up: the highest rate with bounded lag and freshness p99 <= 2 s, CPU per event per process, chart (~6 min); PIPELINEBENCH_FLAGS to change
	$(GO) run ./scripts/bench pipeline $(PIPELINEBENCH_FLAGS)

bench-consent: deps-up ## consent store memory per 1M subjects (10M in memory) and rebuild from Kafka (1M); CONSENTBENCH_FLAGS to change
	$(GO) run ./scripts/bench consent $(CONSENTBENCH_FLAGS)

fuzz: ## run each fuzz target for FUZZTIME (default 30s)
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "fuzz $$pkg $$f"; $(GO) test -run='^$$' -fuzz="^$$f$$" -fuzztime=$${FUZZTIME:-30s} $$pkg || exit 1; \
	  done; \
	done

lint:
	gofmt -l . | tee /dev/stderr | (! read)
	$(GO) vet ./...
	$(GO) vet -C deployments ./...

clean:
	rm -rf bin
