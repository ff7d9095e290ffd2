VENV ?= .venv
HOST ?= 127.0.0.1
PORT ?= 8000
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test test-reliability bench bench-svm bench-scale bench-stress serve clean browser-deps screenshots

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

# After it, `. .venv/bin/activate` puts `rntk` (server, worker and client) on the PATH.
install: $(STAMP)
	@echo "installed; run '. $(VENV)/bin/activate' to put rntk on the PATH (or call $(VENV)/bin/rntk)"

# The page test drives Debian's chromium; install it where we can (root with apt), else it skips.
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "note: chromium is not installed (apt-get install chromium); the browser test will skip"; fi; }

test: $(STAMP) browser-deps
	$(PY) -m pytest -q

# The full reliability suite behind RELIABILITY.md (20 worker kills, 200 submissions from 20
# clients with 50 pollers, ...); `make test` runs its short version. Figures: build/reliability.jsonl
test-reliability: $(STAMP)
	mkdir -p build
	RNTK_RELIABILITY=full RNTK_RELIABILITY_FIGURES=build/reliability.jsonl \
	  $(PY) -m pytest -q -s -p no:cacheprovider tests/reliability tests/service/test_reliability_defects.py

# The fused grid against the per-configuration baseline; DTW cells/s against dtaidistance; the
# small-job latency (iris) with a fresh and a warm pool child; on a GPU, the Pallas tile kernel
# against XLA's (benchmarks.gpu_grid).
bench: $(STAMP)
	$(PY) -m benchmarks.grid_benchmark
	$(PY) -m benchmarks.dtw_benchmark
	$(PY) -m benchmarks.job_wall_time small --jobs 4
	@if $(PY) -c "import jax, sys; sys.exit(jax.default_backend() != 'gpu')"; then $(PY) -m benchmarks.gpu_grid; \
	  else echo "no GPU: the Pallas tile kernel against XLA (benchmarks.gpu_grid) needs one"; fi

# The SVM stage of the default protocol on yeast and abalone, per solver (minutes on a CPU).
bench-svm: $(STAMP)
	$(PY) -m benchmarks.svm_benchmark

# The landmark path: accuracy against dense, landmark schemes, cost in N, and one job over 1 and
# 2 Redis-mode workers of one core each (long on a CPU).
bench-scale: $(STAMP)
	$(PY) -m benchmarks.scale_benchmark accuracy
	$(PY) -m benchmarks.scale_benchmark methods
	$(PY) -m benchmarks.scale_benchmark schemes
	$(PY) -m benchmarks.scale_benchmark fits
	$(PY) -m benchmarks.scale_benchmark blocks
	$(PY) -m benchmarks.scale_benchmark scale
	$(PY) -m benchmarks.job_wall_time fanout --n 100000 --pin

# 300 fresh processes of the JAX solver on loaded cores: hangs and time per solve (~50 min).
bench-stress: $(STAMP)
	$(PY) -m benchmarks.solver_stress --runs 300

# make serve PORT=8080 HOST=0.0.0.0 (a non-loopback HOST needs RNTK_API_KEYS)
serve: $(STAMP)
	@echo "client: . $(VENV)/bin/activate; export RNTK_SERVER=http://$(HOST):$(PORT); rntk jobs"
	$(VENV)/bin/rntk serve --host $(HOST) --port $(PORT)

# Re-take docs/screenshots/*.png with the browser test.
screenshots: $(STAMP) browser-deps
	RNTK_SCREENSHOTS=docs/screenshots $(PY) -m pytest -q tests/service/test_pages.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
