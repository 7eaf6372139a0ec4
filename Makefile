# Switchboard — the two commands: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8080
LINT_PATHS := router integrations tests train $(wildcard bench/*.py)

.PHONY: run test lint bench soak clean train-classifier

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

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

## lint: ruff and mypy
lint: $(STAMP)
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/mypy $(LINT_PATHS)

## bench: measured side by side, ratios printed; see bench/RESULTS.md
bench: $(STAMP)
	$(BIN)/python -m bench.run

## soak: one service process under 10 minutes of mixed load; its memory curve and issue #14
## goal 5 (not part of test or bench: it takes the whole 10 minutes); e.g. SOAK_ARGS="--minutes 1"
soak: $(STAMP)
	$(BIN)/python -m bench.soak $(SOAK_ARGS)

## train-classifier: rebuild config/classifier/model.json.gz from the labelled data
# The data directory holds the JSON-lines files that data/classifier/MANIFEST.json pins by
# SHA-256 (see data/classifier/SOURCES.md for where they come from).
CLASSIFIER_DATA ?= $(firstword $(wildcard ../shared/classifier-data) data/classifier)
train-classifier: $(STAMP)
	$(BIN)/python -m train.classifier --data $(CLASSIFIER_DATA) \
		--manifest data/classifier/MANIFEST.json \
		--out config/classifier/model.json.gz --report data/classifier/REPORT.md

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
