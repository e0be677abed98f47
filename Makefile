# Every target bootstraps .venv on a fresh machine, so each is one command.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test demo bench bench-quick lint clean .dynalite

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/python -m chariot_migrate.services.kit.grpc_codegen >/dev/null  # gRPC stubs (git-ignored)
	touch $(STAMP)

# Type-checked in `make test` (pydantic plugin, settings in pyproject.toml [tool.mypy]); widen as
# packages pass.
MYPY_PACKAGES := chariot_migrate

test: $(STAMP)
	$(BIN)/mypy $(MYPY_PACKAGES)
	-@.ci/install-prometheus || echo "prometheus not installed: its tests will skip with the reason"
	-@.ci/install-dynalite
	$(BIN)/python -m pytest -q -p no:cacheprovider --durations=40

demo: $(STAMP)
	$(BIN)/chariot-migrate up --port $${PORT:-8000}

# wrk is installed best effort (Debian package); without it the bench uses its built-in aiohttp loader.
WRK_INSTALL = command -v wrk >/dev/null 2>&1 || apt-get install -y -q wrk >/dev/null 2>&1 \
	|| (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q wrk >/dev/null 2>&1) \
	|| sudo -n apt-get install -y -q wrk >/dev/null 2>&1 \
	|| echo "wrk not installed: using the built-in load generator"

bench: $(STAMP)
	-@$(WRK_INSTALL)
	$(BIN)/python -m bench.run

bench-quick: $(STAMP)
	-@$(WRK_INSTALL)
	$(BIN)/python -m bench.run --quick

lint: $(STAMP)
	$(BIN)/ruff check chariot_migrate tests bench
	$(BIN)/mypy $(MYPY_PACKAGES)

clean:
	rm -rf $(VENV) .chariot-migrate

# dynalite (npm) for `up --dynamodb dynalite`, the data bench's --dynamodb dynalite and the tests
# that need it (they skip with the reason without it); best effort, see .ci/install-dynalite.
.dynalite:
	.ci/install-dynalite
