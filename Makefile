# Switchboard — the two commands: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8080

.PHONY: run test lint bench soak clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## run: install, then serve on SQLite (var/) with config/routing.yaml
run: $(STAMP)
	@echo ""
	@echo "Switchboard on http://$(HOST):$(PORT)  (database: $${SWITCHBOARD_DATABASE_URL:-SQLite under var/})"
	@echo "Try it:"
	@echo "  curl -s http://$(HOST):$(PORT)/readyz"
	@echo "  $(BIN)/switchboard status"
	@echo "  TWILIO_AUTH_TOKEN=dev-token $(BIN)/python -m router.try_call --url http://$(HOST):$(PORT) --digits 1"
	@echo "  (start with TWILIO_AUTH_TOKEN=dev-token make run to accept the signed test call)"
	@echo ""
	$(BIN)/switchboard serve --host $(HOST) --port $(PORT)

## test: everything the tests need, then pytest
test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

## lint: ruff and mypy
lint: $(STAMP)
	$(BIN)/ruff check router integrations tests bench
	$(BIN)/ruff format --check router integrations tests bench
	$(BIN)/mypy router integrations

## bench: measured side by side, ratios printed; see bench/RESULTS.md
bench: $(STAMP)
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
