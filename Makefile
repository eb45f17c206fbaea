# cnnspec: `make demo` sets everything up and runs the main job; `make test` runs the suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DEMO   ?= specs/lenet5.cnn
OUT    ?= build/demo

.PHONY: demo test install lint graphviz clean bench tables fuzz

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	@touch $(STAMP)

# Debian's graphviz gives `dot` (needed for SVG/PNG diagrams; .dot output works without it).
graphviz:
	@if command -v dot >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian's graphviz (for the dot binary)"; \
		(apt-get install -y -qq graphviz >/dev/null 2>&1 || \
		 (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq graphviz >/dev/null)) \
		|| echo "warning: could not install graphviz; diagrams will be .dot only"; \
	else \
		echo "note: Graphviz's dot is not installed; run 'sudo apt-get install graphviz'" \
		     "for SVG/PNG diagrams (.dot output works without it)"; \
	fi

demo: install graphviz
	@mkdir -p $(OUT)
	$(BIN)/cnnspec check specs/*.cnn specs/examples/*.cnn
	$(BIN)/cnnspec summary $(DEMO)
	$(BIN)/cnnspec summary specs/resnet50.cnn --depth 1
	$(BIN)/cnnspec draw $(DEMO) -o $(OUT)/$(basename $(notdir $(DEMO))).dot
	@if command -v dot >/dev/null 2>&1; then \
		$(BIN)/cnnspec draw $(DEMO) -o $(OUT)/$(basename $(notdir $(DEMO))).svg; \
	else \
		echo "note: no Graphviz dot, so no SVG; run 'sudo apt-get install graphviz'"; \
	fi
	$(BIN)/cnnspec compile $(DEMO) -o $(OUT)/
	$(BIN)/python -c "import sys; sys.path.insert(0, '$(OUT)'); \
		import $(basename $(notdir $(DEMO))) as m; print('imported', ', '.join(m.__all__))"
	@rm -rf $(OUT)/train-lenet5
	$(BIN)/cnnspec train lenet5 --data digits --epochs 5 --out $(OUT)/train-lenet5

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: install graphviz lint
	$(BIN)/python -m pytest -q

# Regenerate grammars/cnnspec.lalr.json after editing grammars/cnnspec.lark.
tables: install
	$(BIN)/python -m cnnspec.lalrgen

bench: install
	$(BIN)/python bench/run_all.py

# The mutation fuzzer (tests/fuzzer.py) for FUZZ_SECONDS, or FUZZ_MUTANTS mutants when
# given; minimal reproducers of what it finds go to build/fuzz/. FUZZ_BUILD=0 skips
# importing, building and running the generated modules. `make test` runs a bounded,
# deterministic part of it (tests/test_fuzz_mutants.py).
FUZZ_SECONDS ?= 600
FUZZ_MUTANTS ?=
FUZZ_SEED    ?= 1
FUZZ_BUILD   ?= 1
fuzz: install
	$(BIN)/python tests/fuzzer.py --seed $(FUZZ_SEED) --out build/fuzz \
		$(if $(FUZZ_MUTANTS),--mutants $(FUZZ_MUTANTS),--seconds $(FUZZ_SECONDS)) \
		$(if $(filter 1,$(FUZZ_BUILD)),--build)

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache
