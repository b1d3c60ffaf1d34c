# Two commands on a fresh machine: `make demo` and `make test`.
# Both create .venv when missing and install semigrad (with torch pinned by constraints.txt).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-dev
THREADS ?= 1

.PHONY: install demo test lint bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev,ray,box2d,pixels]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/semigrad train --run-dir runs/demo-$$(date +%Y%m%d-%H%M%S)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks $(wildcard examples)

test: lint
	$(PY) -m pytest -q

bench: $(STAMP)
	for b in loss_speed env_speed td0_speed baird_speed many_seeds dqn_cartpole; do \
	  echo "== benchmarks/$$b.py"; OMP_NUM_THREADS=$(THREADS) $(PY) benchmarks/$$b.py || exit 1; done

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache .hypothesis
