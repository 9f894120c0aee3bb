"""Test-wide settings: one torch/BLAS thread per process (2-core CI machines stall otherwise); the benchmark
scripts as modules."""

import os
from pathlib import Path
from types import ModuleType

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import torch  # noqa: E402

torch.set_num_threads(1)

import pytest  # noqa: E402
from script_modules import load_module  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def curves() -> ModuleType:
    """benchmarks/learning_curves.py."""
    return load_module(REPO / "benchmarks" / "learning_curves.py")
