# Two entry points for a fresh clone (only Python 3.10-3.12 and pip needed):
#   make train   set up .venv and train MAG on the embedded SMAX map 3s_vs_3z (no StarCraft II needed)
#   make test    set up .venv and run the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# One torch/BLAS thread per process: on small machines Ray workers over-subscribe cores otherwise.
export OMP_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1

.PHONY: install train test mutation bench lock clean

install: $(VENV)/.installed

# torch is pinned (2.13.0, CPU wheel) by requirements/lock.txt: an unpinned torch pulls GBs of CUDA wheels.
$(VENV)/.installed: setup.cfg setup.py requirements/lock.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c requirements/lock.txt torch==2.13.0
	$(BIN)/pip install --quiet --disable-pip-version-check -c requirements/lock.txt -e ".[test]"
	touch $@

# The example's whole 20k env steps (about 6 minutes on 2 cores): the team return rises from about 3 to about 7.
# TRAIN_STOP='{"num_env_steps_sampled_lifetime": 5000}' stops earlier.
TRAIN_EXAMPLE ?= tuned_examples/mag_smax_3s_vs_3z.yaml
TRAIN_STOP    ?= {"num_env_steps_sampled_lifetime": 20000}

train: install
	$(BIN)/rllib train file $(TRAIN_EXAMPLE) --stop '$(TRAIN_STOP)'

test: install
	$(BIN)/python -m pytest -q tests

# Mutation testing of the torch core and the replay buffers (setup.cfg [mutmut]): each mutant is a one-line fault,
# and a test must fail for it. The kill rate per module lands in docs/data/mutation.json (docs/testing.md lists
# the survivors judged equivalent). The whole scope is 2,985 mutants, about an hour on 2 cores; MUTANTS= runs a part:
# 'rllib_mag.learning.* rllib_mag.algorithm.replay.*' (~12 min), 'rllib_mag.planning.*' (~12), 'rllib_mag.models.*' (~30).
MUTANTS ?=
mutation: install
	$(BIN)/pip install --quiet --disable-pip-version-check -c requirements/lock.txt -e ".[mutation]"
	$(BIN)/mutmut run --max-children 2 $(MUTANTS)
	$(BIN)/python tools/mutation_report.py --out docs/data/mutation.json

lock: install
	$(BIN)/pip freeze --exclude-editable | sed 's/^torch==\(.*\)+cpu/torch==\1/' > requirements/lock.txt.new
	{ head -2 requirements/lock.txt; cat requirements/lock.txt.new; } > requirements/lock.txt.tmp
	mv requirements/lock.txt.tmp requirements/lock.txt; rm requirements/lock.txt.new

clean:
	rm -rf $(VENV) *.egg-info
