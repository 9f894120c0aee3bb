"""``torch.compile`` with an eager fallback and visible compile time.

Inductor's CPU backend turns a step of small-matrix torch code into a few fused C++/OpenMP kernels around the
GEMMs; it needs a C++ compiler at run time (``$CXX``, else ``g++``/``c++``/``clang++`` on ``PATH``). Where none is
found, or compilation fails, the function runs eagerly after one warning that says why.
"""

from __future__ import annotations

import os
import shutil
import time
import warnings
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import torch
from torch.utils import _pytree as pytree

T = TypeVar("T")


def cpp_compiler() -> str | None:
    """Path of the C++ compiler inductor's CPU backend would use, or None."""
    candidates = [os.environ["CXX"]] if os.environ.get("CXX") else ["g++", "c++", "clang++"]
    return next((path for path in map(shutil.which, candidates) if path), None)


def _input_signature(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """Shapes, dtypes and devices of the tensors in ``args`` (the inputs a ``dynamic=False`` graph is specialised
    on; a new signature means a new compilation)."""
    return tuple((tuple(x.shape), x.dtype, x.device) if isinstance(x, torch.Tensor) else id(x)
                 for x in pytree.tree_leaves(args))


class Compiled(Generic[T]):
    """``fn`` under ``torch.compile(dynamic=False)``, or ``fn`` itself when ``enabled`` is False.

    ``compile_seconds`` sums the wall time of the calls with a new input signature: compilation (or a hit in
    inductor's on-disk cache) plus that one call. Call ``take_compile_seconds`` to read and reset it per phase.
    """

    def __init__(self, fn: Callable[..., T], enabled: bool, name: str | None = None) -> None:
        self.name = name or fn.__name__
        self._eager = fn
        self._compiled: Callable[..., T] | None = None
        self._seen: set[tuple[Any, ...]] = set()
        self.compile_seconds = 0.0
        if enabled:
            self._compiled = torch.compile(fn, dynamic=False)

    @property
    def enabled(self) -> bool:
        """Whether calls go to the compiled function (False after a fallback to eager)."""
        return self._compiled is not None

    def _fall_back(self, reason: str) -> None:
        warnings.warn(f"torch.compile of {self.name} is off, running eagerly: {reason}", RuntimeWarning,
                      stacklevel=3)
        self._compiled = None

    def __call__(self, *args: Any) -> T:
        if self._compiled is None:
            return self._eager(*args)
        signature = _input_signature(args)
        if signature in self._seen:
            return self._compiled(*args)
        on_cpu = any(isinstance(x, torch.Tensor) and x.device.type == "cpu" for x in pytree.tree_leaves(args))
        if on_cpu and cpp_compiler() is None:
            self._fall_back("no C++ compiler found (inductor's CPU backend needs one: install g++ or set $CXX), "
                            "or set compile: false")
            return self._eager(*args)
        start = time.perf_counter()
        try:
            result = self._compiled(*args)
        except Exception as err:  # noqa: BLE001 -- any backend failure: warn once, stay correct by running eagerly
            self._fall_back(f"{type(err).__name__}: {err}".splitlines()[0])
            return self._eager(*args)
        self.compile_seconds += time.perf_counter() - start
        self._seen.add(signature)
        return result

    def take_compile_seconds(self) -> float:
        """Compile seconds since the last call, then reset to 0."""
        seconds, self.compile_seconds = self.compile_seconds, 0.0
        return seconds
