# Switchboard — the two commands: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8080
LOCKS  := requirements/dev.lock requirements/runtime.lock requirements/build.lock
LOCK_VENV := .venv-lock
HADOLINT_VENV := .venv-hadolint
PIP_TOOLS_VERSION := 7.6.2
LINT_PATHS := router integrations tests train $(wildcard bench/*.py) docs/screenshots.py requirements/audit.py

.PHONY: run test lint audit lock bench soak clean train-classifier screenshots

# The venv holds exactly requirements/dev.lock (rebuilt from empty when a lock or
# pyproject.toml changes), then the project itself, editable, built by the locked hatchling.
$(STAMP): pyproject.toml $(LOCKS)
	$(PYTHON) -m venv --clear $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r requirements/dev.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

## lock: regenerate requirements/*.lock from pyproject.toml (needs the package index)
# Keeps the pins that still satisfy pyproject.toml; `make lock LOCK_ARGS=--upgrade` moves
# everything to the newest allowed, `LOCK_ARGS='--upgrade-package aiohttp'` one package.
# dev.lock is resolved first (it holds everything); the other two take its versions, so the
# image runs what the tests ran. Python 3.11 on Linux x86_64 (CI's and the image's).
PIP_COMPILE = CUSTOM_COMPILE_COMMAND="make lock" $(LOCK_VENV)/bin/pip-compile --quiet \
	--generate-hashes --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links \
	--newline=lf
lock: $(LOCK_VENV)/.installed
	$(PIP_COMPILE) $(LOCK_ARGS) --extra=dev --extra=train --all-build-deps \
		--output-file=requirements/dev.lock pyproject.toml
	$(PIP_COMPILE) $(LOCK_ARGS) --constraint=requirements/dev.lock \
		--output-file=requirements/runtime.lock pyproject.toml
	$(PIP_COMPILE) $(LOCK_ARGS) --constraint=requirements/dev.lock \
		--build-deps-for=wheel --only-build-deps --output-file=requirements/build.lock pyproject.toml

# pip-tools lives in a venv of its own: it makes the locks, nothing installs it
$(LOCK_VENV)/.installed:
	$(PYTHON) -m venv --clear $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install --quiet 'pip-tools==$(PIP_TOOLS_VERSION)'
	touch $@

## run: install, then serve on SQLite (var/) with config/routing.yaml
# A local run accepts calls signed with a development token unless you bring your own.
run: export TWILIO_AUTH_TOKEN ?= dev-only-token
run: export SWITCHBOARD_PUBLIC_URL ?= http://$(HOST):$(PORT)
run: $(STAMP)
	@echo ""
	@echo "Switchboard on http://$(HOST):$(PORT)  (database: $${SWITCHBOARD_DATABASE_URL:-SQLite under var/})"
	@echo "Try it from another terminal:"
	@echo "  curl -s http://$(HOST):$(PORT)/readyz"
	@echo "  TWILIO_AUTH_TOKEN=$$TWILIO_AUTH_TOKEN $(BIN)/switchboard try-call --url http://$(HOST):$(PORT) --digits 1"
	@echo "  TWILIO_AUTH_TOKEN=$$TWILIO_AUTH_TOKEN $(BIN)/switchboard try-call --url http://$(HOST):$(PORT) --speech 'jak nastavit tento vyrobek'"
	@echo "  $(BIN)/switchboard interactions"
	@echo "  $(BIN)/switchboard status"
	@echo "Web console: http://$(HOST):$(PORT)/console  (sign in with a token from"
	@echo "  $(BIN)/switchboard token create --name YOUR-NAME --role operator)"
	@echo ""
	$(BIN)/switchboard serve --host $(HOST) --port $(PORT)

## test: everything the tests need, then pytest
test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

## lint: ruff, mypy, hadolint on the Dockerfile, and known vulnerabilities in the runtime
## lock (pip-audit). The Kubernetes manifests are checked by tests/test_deploy.py (kubeconform
## is in neither PyPI nor Debian, and needs its schemas from the network).
lint: $(STAMP) $(HADOLINT_VENV)/.installed
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/mypy $(LINT_PATHS)
	$(HADOLINT_VENV)/bin/hadolint deploy/Dockerfile
	$(MAKE) --no-print-directory audit

# hadolint lives in a venv of its own, pinned by hash (requirements/hadolint.txt)
$(HADOLINT_VENV)/.installed: requirements/hadolint.txt
	$(PYTHON) -m venv --clear $(HADOLINT_VENV)
	$(HADOLINT_VENV)/bin/pip install --quiet --require-hashes -r requirements/hadolint.txt
	touch $@

## audit: pip-audit over requirements/runtime.lock; fails on a finding not accepted in
## requirements/AUDIT.md, says NOT AUDITED (and passes) when the vulnerability data is unreachable
audit: $(STAMP)
	$(BIN)/python requirements/audit.py requirements/runtime.lock

## bench: measured side by side, ratios printed; see bench/RESULTS.md
bench: $(STAMP)
	$(BIN)/python -m bench.run

## screenshots: the README's pictures of the console panels (docs/img/), taken by Debian's
## chromium from the real service on a generated database (docs/screenshots.py)
screenshots: $(STAMP)
	PYTHONPATH=. $(BIN)/python docs/screenshots.py

## soak: one service process under 10 minutes of mixed load; its memory curve and issue #14
## goal 5 (not part of test or bench: it takes the whole 10 minutes); e.g. SOAK_ARGS="--minutes 1".
## Then the fuzz tests with 100 times their examples (SWITCHBOARD_FUZZ=soak, tests/fuzzing.py);
## FUZZ_ARGS=-x stops at the first failure, SOAK_FUZZ=no skips them.
SOAK_FUZZ ?= yes
FUZZ_TESTS := tests/test_fuzz_parsers.py tests/test_fuzz_http.py tests/test_fuzz_api.py
soak: $(STAMP)
	$(BIN)/python -m bench.soak $(SOAK_ARGS)
	@if [ "$(SOAK_FUZZ)" = yes ]; then \
		SWITCHBOARD_FUZZ=soak $(BIN)/python -m pytest -q $(FUZZ_ARGS) $(FUZZ_TESTS); fi

## train-classifier: rebuild config/classifier/model.json.gz from the labelled data
# The data directory holds the JSON-lines files that data/classifier/MANIFEST.json pins by
# SHA-256 (see data/classifier/SOURCES.md for where they come from).
CLASSIFIER_DATA ?= $(firstword $(wildcard ../shared/classifier-data) data/classifier)
train-classifier: $(STAMP)
	$(BIN)/python -m train.classifier --data $(CLASSIFIER_DATA) \
		--manifest data/classifier/MANIFEST.json \
		--out config/classifier/model.json.gz --report data/classifier/REPORT.md

clean:
	rm -rf $(VENV) $(LOCK_VENV) $(HADOLINT_VENV) .pytest_cache .mypy_cache .ruff_cache
