# The commands a person types: make up, make down, make test. The work is in deploy/ scripts.
SHELL := /bin/bash
BUILD_DIR ?= build
TEST_BUILD_DIR ?= build-test
JOBS ?= $(shell nproc)

.PHONY: all deps build build-test up down status test unit format format-check clean

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
up: deps build
	KEEL_STACK=local KEEL_BIN_DIR=$(CURDIR)/$(BUILD_DIR)/bin ./deploy/local/stack.sh up

down:
	KEEL_STACK=local ./deploy/local/stack.sh down

status:
	KEEL_STACK=local ./deploy/local/stack.sh status

# Every test: unit and integration, against a separate stack (.keel/test, other ports).
test: deps build-test
	./deploy/run-tests.sh $(TEST_BUILD_DIR)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

format-check:
	clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD_DIR) $(TEST_BUILD_DIR)
