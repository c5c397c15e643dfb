# Two entry points: `make run` (the embedded default scenario) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

export FLWR_TELEMETRY_ENABLED := 0
export FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION := 1
export FLWR_DISABLE_UPDATE_CHECK := 1

.PHONY: run test bench venv clean system-deps

# (Re)create the virtual environment whenever the dependencies change.
# torch is installed first, pinned, so nothing pulls a CUDA build.
$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "torch==2.13.0"
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/fedcredit simulate

# Headless Chromium renders the HTML privacy report in a test (Debian package; needs root).
system-deps:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

# Two workers: the real-deployment tests (mostly waiting on Flower's polling) run in order on one,
# everything else on the other (tests/conftest.py groups them).
test: $(STAMP) system-deps
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_simulation.py

clean:
	rm -rf $(VENV) runs .pytest_cache
