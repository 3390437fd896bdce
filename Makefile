# canary — common tasks. `make test` is what CI runs (through .ci/run).
CARGO ?= cargo
VENV  := .venv
PY    := $(VENV)/bin/python

.PHONY: build test lint schema bench tools clean judge-eval demo sim

build:
	$(CARGO) build

# Everything the tests need, then every test. The tests find the independent
# validators in .venv (see tools/requirements.txt).
test: tools
	CANARY_TOOLS=$(CURDIR)/$(VENV)/bin $(CARGO) test --workspace --all-features

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Regenerate the committed JSON Schema from the manifest types.
schema:
	$(CARGO) run --quiet -- schema > schemas/canaryrollout.schema.json

# Benchmarks run release builds and print medians; see README "Benchmarks".
bench: tools
	CANARY_TOOLS=$(CURDIR)/$(VENV)/bin $(CARGO) bench

NODE_CLIENTS := tests/clients/node

tools: $(VENV)/.installed $(NODE_CLIENTS)/node_modules/.installed

$(VENV)/.installed: tools/requirements.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r tools/requirements.txt
	touch $@

$(NODE_CLIENTS)/node_modules/.installed: $(NODE_CLIENTS)/package.json $(NODE_CLIENTS)/package-lock.json
	cd $(NODE_CLIENTS) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

clean:
	$(CARGO) clean
	rm -rf $(VENV) $(NODE_CLIENTS)/node_modules

# Thousands of simulated rollouts per class, canary's judgement beside a runbook's;
# writes docs/judge-eval.md (see README "How canary judges").
judge-eval:
	$(CARGO) run --release --quiet --example judge_eval -- --out docs/judge-eval.md

# The deterministic simulation: SEEDS=N seeds (default sized for CI), or SEED=S to
# replay one; see README "The simulation".
SEEDS ?=
SEED ?=
sim:
	SEEDS=$(SEEDS) SEED=$(SEED) $(CARGO) run --release --quiet -p canary-sim

# The whole story in under a minute against an embedded emulator (builds what it needs).
demo:
	$(CARGO) run --release --quiet -- demo
