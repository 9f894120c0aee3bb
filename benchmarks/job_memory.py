"""Peak memory of a training job: the total RSS of its process tree plus the Ray processes started for it.

Runs a command (by default a 3-iteration ``rllib train`` of ``tuned_examples/mag_smax_2s3z.yaml``; anything after
``--`` replaces it) and samples every ``--interval`` seconds, with psutil, the RSS of:

- the command's process and all its descendants. ``ray.init`` starts gcs_server, raylet (with the plasma store),
  the dashboard and monitors as children of the driver, and the raylet starts the workers and actors, so this is
  every Ray process started for the job;
- processes seen in that tree earlier that are still alive but left it (a Ray worker reparented to init when its
  raylet exits first).

Ray processes are deliberately not picked up by name (``ray::``, ``raylet``, ...): on a shared machine that also
counts other jobs' Ray workers, e.g. a test session's rollout actor orphaned when its own Ray shut down.

It prints the peak of the summed RSS (GiB) and the processes with the highest peak RSS, as markdown.
Summed RSS counts shared pages (e.g. Ray's object store, shared libraries) once per process, so it is an upper
bound on the memory the job needs.

Example: ``.venv/bin/python benchmarks/job_memory.py -- .venv/bin/rllib train file tuned_examples/mag_smax_2s3z.yaml
--stop '{"training_iteration": 1}'``
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
DEFAULT_COMMAND = [str(REPO / ".venv/bin/rllib"), "train", "file", str(REPO / "tuned_examples/mag_smax_2s3z.yaml"),
                   "--stop", '{"training_iteration": 3}']
GIB = 1024**3


@dataclass
class ProcessPeak:
    """The highest RSS seen for one process, and its label at that moment."""

    label: str
    rss: int = 0


@dataclass
class Samples:
    start: float
    seen: dict[int, psutil.Process] = field(default_factory=dict)  # every process ever in the job's tree
    peaks: dict[int, ProcessPeak] = field(default_factory=dict)
    peak_total: int = 0
    peak_time: float = 0.0
    peak_processes: int = 0
    count: int = 0


def label(process: psutil.Process) -> str:
    """A short name: a Ray worker's title without the method (``ray::MAG``) or the program and its first arguments
    that are not ``--options`` (paths shortened to file names)."""
    try:
        cmdline = process.cmdline()
    except psutil.Error:
        return "?"
    if not cmdline:
        return process.name()
    if cmdline[0].startswith("ray::"):
        return cmdline[0].split()[0].split(".")[0]
    args = [Path(arg).name if "/" in arg else arg for arg in cmdline[1:] if not arg.startswith("--")]
    text = " ".join([Path(cmdline[0]).name, *args[:4]])
    return text if len(text) <= 70 else text[:67] + "..."


def job_processes(root: psutil.Process, samples: Samples) -> list[psutil.Process]:
    """`root`, its descendants, and the processes once in that tree that still run (`samples.seen` grows)."""
    try:
        samples.seen.update((p.pid, p) for p in [root, *root.children(recursive=True)])
    except psutil.Error:
        pass
    return [p for p in samples.seen.values() if p.is_running()]  # is_running also rejects a reused pid


def sample(root: psutil.Process, samples: Samples) -> None:
    total, alive = 0, 0
    for process in job_processes(root, samples):
        try:
            rss = process.memory_info().rss
        except psutil.Error:
            continue
        total, alive = total + rss, alive + 1
        peak = samples.peaks.setdefault(process.pid, ProcessPeak(label(process)))
        if rss > peak.rss:
            peak.rss, peak.label = rss, label(process)
    samples.count += 1
    if total > samples.peak_total:
        samples.peak_total, samples.peak_time, samples.peak_processes = total, time.time() - samples.start, alive


def report(command: list[str], samples: Samples, returncode: int, top: int, goal_gib: float) -> str:
    peak_gib = samples.peak_total / GIB
    lines = [f"command: `{' '.join(command)}` (exit code {returncode}, {time.time() - samples.start:.0f} s, "
             f"{samples.count} samples)", "",
             f"**peak total RSS: {peak_gib:.2f} GiB** at {samples.peak_time:.0f} s, over {samples.peak_processes} "
             f"processes (goal < {goal_gib:g} GiB: {'met' if peak_gib < goal_gib else 'NOT met'})", "",
             "| pid | process | peak RSS (GiB) |", "|---:|---|---:|"]
    ranked = sorted(samples.peaks.items(), key=lambda item: item[1].rss, reverse=True)
    for pid, peak in ranked[:top]:
        lines.append(f"| {pid} | `{peak.label}` | {peak.rss / GIB:.2f} |")
    rest = ranked[top:]
    if rest:
        lines.append(f"| | {len(rest)} more processes | {sum(p.rss for _, p in rest) / GIB:.2f} (sum of peaks) |")
    return "\n".join(lines)


def main() -> None:
    argv = sys.argv[1:]
    command = argv[argv.index("--") + 1:] if "--" in argv else DEFAULT_COMMAND
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     usage="%(prog)s [options] [-- command ...]")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between samples")
    parser.add_argument("--top", type=int, default=10, help="processes listed in the table")
    parser.add_argument("--goal-gib", type=float, default=6.0, help="peak total RSS to compare against")
    args = parser.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    if not command:
        parser.error("no command after --")

    samples = Samples(start=time.time())
    proc = subprocess.Popen(command)
    root = psutil.Process(proc.pid)
    try:
        while proc.poll() is None:
            sample(root, samples)
            time.sleep(args.interval)
    except KeyboardInterrupt:  # the command got the same SIGINT; wait for it and still report
        proc.wait()
    print("\n" + report(command, samples, proc.returncode, args.top, args.goal_gib))
    raise SystemExit(proc.returncode)


if __name__ == "__main__":
    main()
