# Two entry points work on a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: demo test test-scale-out reliability install install-dev migrate serve deploy-check bench price-index local-model local-demo clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Reinstall when the dependency list changes, not on every call.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	touch $@

$(DEV_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@ $(STAMP)

install: $(STAMP)
install-dev: $(DEV_STAMP)

# Every database of the profile (the embedded one keeps the channel layer's messages in a database of their own).
migrate: $(STAMP)
	$(PY) manage.py migrate --no-input

demo: migrate
	$(PY) manage.py run_scenario ai-summit

# The web server (daphne, with websockets: settings give runserver, and only it, daphne's app) and a Huey
# worker together; Ctrl-C stops both.
serve: migrate
	@echo "Scenario Lab: http://127.0.0.1:8000/admin/ (make a user: $(PY) manage.py createsuperuser). Ctrl-C stops it."
	@$(PY) manage.py run_huey & worker=$$!; \
	trap 'kill $$worker 2>/dev/null; wait $$worker' EXIT INT TERM; \
	$(PY) manage.py runserver 127.0.0.1:8000 --noreload

# A production install (SCENARIOLAB_DEBUG=false and the rest of README's "Deploy for a team" in the environment),
# prepared and checked: static files collected (hashed names, gzip and brotli copies), every database migrated,
# and `check --deploy` without a single warning. Run it again after every upgrade.
deploy-check: $(STAMP)
	$(PY) manage.py collectstatic --no-input -v 0
	$(PY) manage.py migrate --no-input
	$(PY) manage.py check --deploy --fail-level WARNING

# The whole suite on the embedded profile, then the persistence and worker tests again on PostgreSQL and
# Redis (both run on these machines at 127.0.0.1; override the URLs to use others).
SCALE_OUT_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test
SCALE_OUT_REDIS_URL ?= redis://127.0.0.1:6379/0

# The browser tests drive Debian's chromium through Playwright (which cannot download browsers here).
CHROMIUM ?= /usr/bin/chromium
$(CHROMIUM):
	@echo "Installing Debian's chromium for the browser tests (apt-get)"
	@if [ "$$(id -u)" = 0 ]; then sudo=""; else sudo="sudo -n"; fi; \
	$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq chromium >/dev/null

# Three passes run side by side, each on databases, queues, folders and ports of its own (each pytest process
# makes its own temporary data folder): the embedded profile in two halves of about the same length (runs/ and
# batches/, and the rest), one per core, and the scale-out pass, which mostly waits on its servers and workers.
# The other passes' output follows the first's.
test: $(DEV_STAMP) $(CHROMIUM)
	$(VENV)/bin/ruff check .
	@mkdir -p test-artifacts
	@$(MAKE) --no-print-directory test-scale-out > test-artifacts/scale-out.log 2>&1 & scale_out=$$!; \
	$(PY) -m pytest runs batches > test-artifacts/embedded-runs.log 2>&1 & runs_half=$$!; \
	$(PY) -m pytest --ignore-glob='runs/*' --ignore-glob='batches/*'; rest=$$?; \
	wait $$runs_half; runs=$$?; \
	wait $$scale_out; scaled=$$?; \
	echo "---- embedded profile, runs/ and batches/ ----"; cat test-artifacts/embedded-runs.log; \
	echo "---- PostgreSQL + Redis (make test-scale-out) ----"; cat test-artifacts/scale-out.log; \
	test $$rest -eq 0 && test $$runs -eq 0 && test $$scaled -eq 0

test-scale-out: $(DEV_STAMP)
	DATABASE_URL=$(SCALE_OUT_DATABASE_URL) REDIS_URL=$(SCALE_OUT_REDIS_URL) $(PY) -m pytest -m both_profiles -q

# The reliability suite in full (make test plays each scenario with a few trials): one table, also kept in
# reliability/results.json. docs/RELIABILITY.md says what each scenario does and holds the last full table.
# Scenarios marked both_profiles play on the embedded profile, then on PostgreSQL + Redis at the URLs above.
reliability: $(DEV_STAMP) $(CHROMIUM)
	SCALE_OUT_DATABASE_URL=$(SCALE_OUT_DATABASE_URL) SCALE_OUT_REDIS_URL=$(SCALE_OUT_REDIS_URL) $(PY) -m reliability --full

# Every benchmark against the loopback fake LLM server: one table, also kept in bench/results.json
# (`$(PY) -m bench --quick` checks the machinery in seconds; `--only NAME` plays one benchmark).
bench: $(DEV_STAMP) $(CHROMIUM)
	$(PY) -m bench

# After upgrading genai-prices: the prices and context windows runs read without importing it.
price-index: $(STAMP)
	$(PY) -m engine.llm.build_price_index

# The bundled local model (opt-in): llama.cpp is compiled here (about 5 minutes on 2 cores). A portable AVX2
# build: llama.cpp's native build picks AMX/AVX-512 kernels that crash on some virtual machines.
LOCAL_STAMP := $(VENV)/.installed-local
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON

$(LOCAL_STAMP): pyproject.toml | $(DEV_STAMP)
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=2 $(PY) -m pip install --quiet -e '.[dev,local]'
	$(PY) -m engine.llm.local_model check
	touch $@

local-model: $(LOCAL_STAMP)

local-demo: $(LOCAL_STAMP) migrate
	$(PY) -m engine.llm.local_model exec -- $(PY) manage.py run_scenario ai-summit --turns 1 --model local/gemma3-270m

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info test-artifacts
