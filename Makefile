# Set-up and the two jobs a new user runs first.  `make run` and `make test` create
# .venv, install the CPU build of torch 2.13.0 *before* anything else (so no dependency
# can pull a CUDA wheel), then the package with its dev, profile and ray extras (the tests
# check that torch-tb-profiler parses our traces and run the smoke suite on a local Ray).
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
SUITE  ?= resolution
COST_BASELINE ?= baselines/gate-cost
GATE_RESULTS  ?= results/gate-cost-check

.PHONY: install run test clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[dev,profile,ray]"
	touch $@

install: $(BIN)/.installed

run: install
	$(BIN)/nlbench run --suite $(SUITE) --report

# pytest exits 5 when it collected no test: that must fail, never pass silently.
# Then the gate's cost tier against the committed baseline: no change to a block's
# params, MACs or FLOPs lands unseen (an intended one: see README, "Updating the baseline").
test: install
	$(BIN)/python -m pytest -q; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; \
	if [ $$rc -ne 0 ]; then exit $$rc; fi
	$(BIN)/nlbench gate $(COST_BASELINE) --cost-only --out $(GATE_RESULTS)

clean:
	rm -rf $(VENV) build *.egg-info
