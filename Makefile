# LuaStrands: `make run` serves examples/chat.lua on port 8080, `make test` runs every test.
SWIFT      ?= swift
PORT       ?= 8080
VENV       := .venv
PYTHON     := $(VENV)/bin/python
FUZZ_RUNS  ?= 1000000
FUZZ_TIME  ?= 900
BIN_DIR     = $(shell $(SWIFT) build --show-bin-path)
RELEASE_DIR = $(shell $(SWIFT) build -c release --show-bin-path)

.PHONY: all deps build release run test unit e2e autobahn bench fuzz fuzz-smoke clean

all: build

deps:
	@scripts/install-deps.sh

build: deps
	$(SWIFT) build --product luastrands

release: deps
	$(SWIFT) build -c release --product luastrands

run: release
	$(RELEASE_DIR)/luastrands serve examples/chat.lua --port $(PORT)

test: unit e2e autobahn fuzz-smoke

unit: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

$(PYTHON): Tests/e2e/requirements.txt
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -r Tests/e2e/requirements.txt
	@touch $(PYTHON)

e2e: build $(PYTHON)
	LUASTRANDS_BIN=$(BIN_DIR)/luastrands $(PYTHON) -m pytest -q Tests/e2e

# Conformance: ../shared/autobahn against the echo example, all but the
# compression cases; fails on any FAILED case (AUTOBAHN_ALL=1 for all 517).
autobahn: build
	LUASTRANDS_BIN=$(BIN_DIR)/luastrands scripts/autobahn.sh

bench: release
	scripts/bench.sh

# libFuzzer targets in Fuzz/, FUZZ_RUNS inputs each, at most FUZZ_TIME seconds each.
fuzz: deps
	SWIFT=$(SWIFT) FUZZ_RUNS=$(FUZZ_RUNS) FUZZ_TIME=$(FUZZ_TIME) scripts/fuzz.sh

# A short run inside make test: the targets keep building, and their reference
# models keep agreeing with the library (a change that breaks one fails at once).
fuzz-smoke: deps
	SWIFT=$(SWIFT) FUZZ_RUNS=20000 FUZZ_TIME=120 scripts/fuzz.sh

clean:
	rm -rf .build $(VENV) out
