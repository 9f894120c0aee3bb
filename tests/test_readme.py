"""The README's Python API example runs as written (paths moved into a temporary folder)."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def python_api_example() -> str:
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Python API"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_python_api_example_trains_checkpoints_and_exports(tmp_path):
    code = python_api_example().replace("/tmp/mag_ckpt", str(tmp_path / "ckpt")).replace(
        "/tmp/mag_policy", str(tmp_path / "policy"))
    code = "import torch; torch.set_num_threads(1)\n" + code
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    win_rate, accumulated_error = map(float, proc.stdout.strip().splitlines()[-1].split())
    assert math.isfinite(win_rate) and math.isfinite(accumulated_error)  # printed, not NaN (no episode, no R_m)
    assert (tmp_path / "ckpt" / "algorithm_state.pkl").is_file()
    assert (tmp_path / "policy").is_dir() and any((tmp_path / "policy").iterdir())
