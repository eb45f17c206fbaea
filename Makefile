# cnnspec: `make demo` sets everything up and runs the main job; `make test` runs the suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DEMO   ?= specs/lenet5.cnn
OUT    ?= build/demo

.PHONY: demo test install lint graphviz chromium neovim clean bench tables fuzz gpu-wheels vsix

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

# Debian's chromium and chromium-driver: the headless browser of the interactive page's
# tests (tests/browser/, driven by Selenium; no browser is downloaded). Without them those
# tests skip and say so.
chromium:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian's chromium and chromium-driver (for the browser tests)"; \
		(apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 || \
		 (apt-get update -qq >/dev/null 2>&1 && \
		  apt-get install -y -qq chromium chromium-driver >/dev/null)) \
		|| echo "warning: could not install chromium; the browser tests will skip"; \
	else \
		echo "note: no chromium/chromedriver; run 'sudo apt-get install chromium" \
		     "chromium-driver' for the interactive page's browser tests (they skip without)"; \
	fi

# Debian's neovim: tests/lsp/test_neovim.py drives its built-in LSP client headless (it
# skips, saying so, without `nvim`).
neovim:
	@if command -v nvim >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian's neovim (for the language server's editor test)"; \
		(apt-get install -y -qq neovim >/dev/null 2>&1 || \
		 (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq neovim >/dev/null)) \
		|| echo "warning: could not install neovim; tests/lsp/test_neovim.py will skip"; \
	else \
		echo "note: neovim is not installed; run 'sudo apt-get install neovim' to run" \
		     "tests/lsp/test_neovim.py (it skips without nvim)"; \
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
	$(BIN)/cnnspec fmt --check specs/*.cnn specs/examples/*.cnn

test: install graphviz chromium neovim lint
	$(BIN)/python -m pytest -q

# Regenerate grammars/cnnspec.lalr.json after editing grammars/cnnspec.lark.
tables: install
	$(BIN)/python tools/lalrgen.py

# The VS Code extension (editors/vscode: the TextMate grammar, the `cnnspec lsp` client)
# as build/cnnspec-<version>.vsix. Needs node and npm (Debian: apt-get install nodejs
# npm); npm install fetches vscode-languageclient (and the grammar tests' vscode-textmate),
# npx fetches vsce.
VSIX := build/cnnspec-$(shell sed -n 's/^  "version": "\(.*\)",$$/\1/p' editors/vscode/package.json).vsix
vsix: install
	$(BIN)/python tools/gen_grammar.py --check
	cd editors/vscode && npm install --no-audit --no-fund
	@mkdir -p build
	cd editors/vscode && npx --yes @vscode/vsce@3 package --out ../../$(VSIX)
	@ls -l $(VSIX)

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

# Wheels (CPython 3.12, manylinux x86-64) of what cnnspec needs beyond PyTorch, NumPy,
# matplotlib and scikit-learn, for a bare GPU machine without network: bench/gpu_check.sh
# installs from build/gpu-wheels only what that machine lacks (docs/train.md, "GPU").
# The pins are the versions of .venv (tests/train/test_gpu_check.py checks that they agree).
GPU_WHEELS_DIR := build/gpu-wheels
GPU_WHEELS := lark==1.3.1 pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 \
	typing-inspection==0.4.5 typing-extensions==4.16.0 graphviz==0.21 networkx==3.6.1 \
	jinja2==3.1.6 markupsafe==3.0.4 rich==15.0.0 pygments==2.21.0 markdown-it-py==4.3.0 \
	mdurl==0.1.2
gpu-wheels: install
	@mkdir -p $(GPU_WHEELS_DIR)
	$(BIN)/python -m pip download --quiet --disable-pip-version-check --no-deps \
		--only-binary=:all: --python-version 3.12 --implementation cp --abi cp312 \
		--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
		--platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
		--platform manylinux1_x86_64 -d $(GPU_WHEELS_DIR) $(GPU_WHEELS)
	@ls $(GPU_WHEELS_DIR)

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache
