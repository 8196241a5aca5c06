# The commands a person types: make up, make down, make test. The work is in deploy/ scripts.
SHELL := /bin/bash
BUILD_DIR ?= build
TEST_BUILD_DIR ?= build-test
JOBS ?= $(shell nproc)

.PHONY: all deps build build-test up down status test unit bench chaos fuzz format format-check clean

all: build

deps:
	./deploy/install-deps.sh

build:
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(BUILD_DIR) -j $(JOBS)

# The test build: AddressSanitizer + UndefinedBehaviorSanitizer, failpoints compiled in.
build-test:
	cmake -S . -B $(TEST_BUILD_DIR) -DCMAKE_BUILD_TYPE=Debug -DKEEL_SANITIZE=ON -DKEEL_FAILPOINTS=ON >/dev/null
	cmake --build $(TEST_BUILD_DIR) -j $(JOBS)

# Starts PostgreSQL, Kafka, Prometheus and every keel service under .keel/local.
# BROKERS=3: a 3-node KRaft cluster, keel's topics with replication factor 3 and
# min.insync.replicas=2 (fixed when the stack is first formatted; `stack.sh wipe` to change).
up: deps build
	KEEL_STACK=local KEEL_BIN_DIR=$(CURDIR)/$(BUILD_DIR)/bin $(if $(BROKERS),KEEL_KAFKA_NODES=$(BROKERS)) ./deploy/local/stack.sh up

down:
	KEEL_STACK=local ./deploy/local/stack.sh down

status:
	KEEL_STACK=local ./deploy/local/stack.sh status

# Every test: unit and integration, against a separate stack (.keel/test, other ports).
test: deps build-test
	./deploy/run-tests.sh $(TEST_BUILD_DIR)

# The benchmark: its own stack (.keel/bench, ports 26xxx), every scenario, a figures table
# and results/bench-<time>/ with report.md, CSVs and plots (docs/benchmarks.md).
bench: deps build
	./bench/run.sh --bin-dir $(BUILD_DIR)/bin

# The fault-injection suite (docs/chaos.md): its own stack (.keel/chaos, ports 24xxx) from the
# test build, payments under seeded faults, then the audit; results/chaos-<time>/report.md.
# make chaos DURATION=600 SEED=7 FAULTS=kill,pause,kafka,postgres,provider BROKERS=3 RATE=20
DURATION ?= 300
chaos: deps build-test
	KEEL_BIN_DIR=$(CURDIR)/$(TEST_BUILD_DIR)/bin ./chaos/run.sh --own-stack --duration $(DURATION) \
		$(if $(SEED),--seed $(SEED)) $(if $(FAULTS),--faults $(FAULTS)) $(if $(RATE),--rate $(RATE)) \
		--brokers $(or $(BROKERS),1)

# The gateway's libFuzzer targets (fuzz/README.md), each for FUZZ_SECONDS, built with clang
# (ASan + UBSan) in build-fuzz/. `make test` runs each for 20 s as ctest tests fuzz.*.
FUZZ_SECONDS ?= 60
fuzz: deps
	./fuzz/run.sh all $(FUZZ_SECONDS)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

format-check:
	clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD_DIR) $(TEST_BUILD_DIR) build-fuzz
