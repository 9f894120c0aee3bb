"""The `rllib` / `rllib-mag` command: `rllib train file EXPERIMENT.yaml [flags]`, `rllib evaluate CHECKPOINT`
(greedy episodes, win rate with a CI, optional GIF; `rllib_mag.evaluation`) and `rllib plot TRIAL_DIR` (learning
curves as PNG; `rllib_mag.plots`).

Ray 2.60 ships no `rllib` executable. This one accepts the classic RLlib/Tune experiment YAML::

    my-experiment:
      run: PPO            # or `algo:`; a registered name, an RLlib built-in or a dotted path
      env: smax           # moved into config["env"], as Tune does
      stop: {training_iteration: 10}
      config: {...}       # AlgorithmConfig keys; unknown keys are rejected (RLlib accepts typos silently)
      num_samples: 1
      checkpoint_config: {checkpoint_frequency: 5, checkpoint_at_end: true}
      storage_path: ~/ray_results

and runs it with `ray.tune.run_experiments` (progress as `rllib_mag.progress` prints it; TensorBoard logs land in
each trial's folder). Unknown experiment, config, stop and checkpoint_config keys are rejected with the closest
valid one before Ray starts.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import difflib
import importlib
import json
import os
import re
import shlex
import socket
import sys
from pathlib import Path
from typing import Any

import yaml

EXPERIMENT_KEYS = (
    "run", "algo", "env", "stop", "config", "num_samples", "checkpoint_config", "storage_path",
    "resources_per_trial", "max_failures", "restore", "name",
)
# Old-style config keys that `AlgorithmConfig.update_from_dict` translates or handles specially.
LEGACY_CONFIG_KEYS = (
    "callbacks", "create_env_on_driver", "custom_eval_function", "framework", "input", "lambda",
    "num_cpus_for_driver", "num_workers", "multiagent", "model", "env", "__trial_info__",
)


class NumberLoader(yaml.SafeLoader):
    """PyYAML's safe loader reading numbers as YAML 1.2 does: `5e-4` and `1e6` are floats (YAML 1.1, which PyYAML
    follows, needs a decimal point and reads `5e-4` as the string "5e-4")."""


NumberLoader.add_implicit_resolver("tag:yaml.org,2002:float",
                                   re.compile(r"^[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+$"),
                                   list("-+0123456789."))


class CLIError(ValueError):
    """A user error in the experiment file or the flags; printed without a traceback."""


def _closest(key: str, valid: list[str]) -> str:
    match = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    return f"; did you mean '{match[0]}'?" if match else ""


def resolve_algorithm(name: str) -> type:
    """Resolve `run:` to an Algorithm class: a dotted path, this package's, a registered one or an RLlib built-in."""
    import ray.rllib  # noqa: F401  (RLlib's own algorithms)
    from ray.rllib.algorithms.registry import ALGORITHMS as RLLIB_ALGORITHMS
    from ray.tune.registry import TRAINABLE_CLASS, _global_registry

    from rllib_mag import algorithms

    if "." in name:
        module_name, _, attr = name.rpartition(".")
        try:
            return getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as err:
            raise CLIError(f"cannot import algorithm '{name}': {err}") from err
    ours = algorithms()
    if name in ours:
        return ours[name]
    if _global_registry.contains(TRAINABLE_CLASS, name):
        return _global_registry.get(TRAINABLE_CLASS, name)
    if name in RLLIB_ALGORITHMS:
        return RLLIB_ALGORITHMS[name]()[0]
    known = sorted(set(RLLIB_ALGORITHMS) | set(ours))
    raise CLIError(f"unknown algorithm '{name}'{_closest(name, known)} (known: {', '.join(known)}; "
                   "or give a dotted path such as 'my_pkg.my_module.MyAlgorithm')")


def check_config_keys(algo_cls: type, config: dict[str, Any], where: str) -> None:
    """Reject config keys the algorithm does not know, naming the closest valid one."""
    default = algo_cls.get_default_config()
    settable_properties = {name for name in dir(type(default))
                           if isinstance(getattr(type(default), name), property) and getattr(type(default), name).fset}
    valid = set(vars(default)) | set(default.to_dict()) | settable_properties | set(LEGACY_CONFIG_KEYS)
    valid = sorted(k for k in valid if not k.startswith("_") or k == "_model_config")
    for key in config:
        if key not in valid and not key.startswith("evaluation_"):
            raise CLIError(f"{where}: unknown config key '{key}' for {algo_cls.__name__}"
                           f"{_closest(key, valid)}")


def _has_search_space(value: Any) -> bool:
    from ray.tune.search.sample import Domain

    if isinstance(value, dict):
        return "grid_search" in value or any(_has_search_space(v) for v in value.values())
    return isinstance(value, Domain)


def check_config_values(algo_cls: type, config: dict[str, Any], where: str) -> None:
    """Run the algorithm's own `validate()` on the driver before Ray starts (skipped for Tune search spaces)."""
    if _has_search_space(config):
        return
    try:
        algo_cls.get_default_config().update_from_dict(config).validate()
    except ValueError as err:
        raise CLIError(f"{where}: invalid config: {err}") from err


def _deep_update(base: dict, override: dict) -> dict:
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _deep_update(base[key], value)
        else:
            base[key] = value
    return base


def build_experiments(path: str, stop: dict | None = None, config: dict | None = None,
                      storage_path: str | None = None) -> dict[str, dict[str, Any]]:
    """Load an experiment YAML file and turn each entry into `ray.tune.Experiment` keyword arguments."""
    try:
        raw = yaml.load(Path(path).read_text(), Loader=NumberLoader)
    except FileNotFoundError as err:
        raise CLIError(f"experiment file not found: {path}") from err
    except yaml.YAMLError as err:
        raise CLIError(f"{path} is not valid YAML: {err}") from err
    if not isinstance(raw, dict) or not raw:
        raise CLIError(f"{path}: expected a mapping of experiment names to experiment specs")
    experiments = {}
    for name, spec in raw.items():
        where = f"{path}: experiment '{name}'"
        if not isinstance(spec, dict):
            raise CLIError(f"{where}: expected a mapping, got {type(spec).__name__}")
        unknown = sorted(set(spec) - set(EXPERIMENT_KEYS))
        if unknown:
            raise CLIError(f"{where}: unknown key '{unknown[0]}'{_closest(unknown[0], list(EXPERIMENT_KEYS))}"
                           f" (valid keys: {', '.join(EXPERIMENT_KEYS)})")
        spec = copy.deepcopy(spec)
        algo_name = spec.pop("run", None) or spec.pop("algo", None)
        if not algo_name:
            raise CLIError(f"{where}: needs `run:` (or `algo:`), e.g. `run: MAG` or `run: PPO`")
        algo_cls = resolve_algorithm(algo_name)
        algo_config = _deep_update(spec.pop("config", None) or {}, config or {})
        if "env" in spec:
            algo_config["env"] = spec.pop("env")
        check_config_keys(algo_cls, algo_config, where)
        check_config_values(algo_cls, algo_config, where)
        if stop:  # an empty object keeps the file's stop criteria
            spec["stop"] = stop
        check_stop_keys(spec.get("stop") or {}, where)
        if storage_path or spec.get("storage_path"):
            spec["storage_path"] = os.path.abspath(os.path.expanduser(storage_path or spec["storage_path"]))
        # a final checkpoint unless the file says otherwise (Ctrl-C relies on checkpoints to resume from)
        spec["checkpoint_config"] = checkpoint_config({"checkpoint_at_end": True,
                                                       **(spec.get("checkpoint_config") or {})}, where)
        experiments[name] = {"run": algo_cls, "config": algo_config, **spec}
    return experiments


def check_ray_address(address: str, timeout_s: float = 5.0) -> None:
    """Fail at once when `--ray-address host:port` does not answer (`ray.init` would retry for minutes)."""
    if address in ("auto", "local"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise CLIError(f"--ray-address {address} is invalid: give HOST:PORT of the Ray head (port 6379 by default), "
                       "ray://HOST:10001 for Ray Client, or 'auto'")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as err:
        raise CLIError(f"--ray-address {address}: no Ray head answers there ({err}); start one with `ray start "
                       "--head` on that machine, or check the address `ray status` prints there") from err


def check_local_gpus(num_gpus: int) -> None:
    """`--num-gpus N` tells a local Ray instance it has N GPUs; fail now if torch sees fewer (the learner would
    otherwise fail later inside NCCL or CUDA)."""
    import torch

    found = torch.cuda.device_count()
    if num_gpus > found:
        raise CLIError(f"--num-gpus {num_gpus} is invalid: torch sees {found} GPU(s) on this machine (CUDA "
                       f"available: {torch.cuda.is_available()}); drop --num-gpus to train on CPU")


def check_local_resources(experiments: dict[str, dict[str, Any]], available: dict[str, float]) -> None:
    """A local Ray instance never grows: fail now when one trial needs more CPUs or GPUs than it has (Tune would
    otherwise wait for them forever). Trials with a search space or explicit `resources_per_trial` are skipped."""
    for name, spec in experiments.items():
        if "resources_per_trial" in spec or _has_search_space(spec["config"]):
            continue
        needed = spec["run"].default_resource_request(spec["config"]).required_resources
        for resource in ("CPU", "GPU"):
            if needed.get(resource, 0) > available.get(resource, 0):
                raise CLIError(f"experiment '{name}': one trial needs {needed[resource]:g} {resource} (env runners, "
                               f"learners, rollout actors and the driver), but this local Ray instance has "
                               f"{available.get(resource, 0):g}; lower the num_{resource.lower()}s_per_* or "
                               f"num_* settings, pass --num-{resource.lower()}s, or use --ray-address for a "
                               "cluster")


#: Result keys a stop criterion may name at the top level; deeper metrics are `/`-paths into these groups.
STOP_KEYS = ("training_iteration", "num_env_steps_sampled_lifetime", "num_env_steps_trained_lifetime",
             "num_episodes_lifetime", "time_total_s", "timesteps_total", "episodes_total", "time_since_restore")
RESULT_GROUPS = ("env_runners", "evaluation", "learners", "world_model", "planning", "policy", "mag", "timers",
                 "throughput", "model_error", "perf", "fault_tolerance")


def check_stop_keys(stop: dict[str, Any], where: str) -> None:
    """A misspelt stop key never triggers and the trial trains forever: accept the known top-level result keys
    and `/`-paths into the known result groups, and name the closest key otherwise."""
    for key in stop:
        if key in STOP_KEYS or ("/" in key and key.split("/")[0] in RESULT_GROUPS):
            continue
        raise CLIError(f"{where}: unknown stop key '{key}'{_closest(key, list(STOP_KEYS))} (a trial would never "
                       f"stop on it; valid: {', '.join(STOP_KEYS)}, or a metric path such as 'env_runners/win_rate')")


def checkpoint_config(settings: dict[str, Any], where: str) -> Any:
    """`tune.CheckpointConfig(**settings)`, with the closest valid field for a misspelt one."""
    from ray import tune

    valid = [field.name for field in dataclasses.fields(tune.CheckpointConfig) if not field.name.startswith("_")]
    for key in settings:
        if key not in valid:
            raise CLIError(f"{where}: unknown checkpoint_config key '{key}'{_closest(key, valid)} "
                           f"(valid: {', '.join(valid)})")
    return tune.CheckpointConfig(**settings)


def _json_arg(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not valid JSON ({err}): {text}") from err
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got: {text}")
    return value


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rllib", description="Train RLlib algorithms (MAG included) "
                                     "from classic RLlib/Tune experiment YAML files.")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train an algorithm")
    sources = train.add_subparsers(dest="source", required=True)
    file_parser = sources.add_parser("file", help="train from an experiment YAML file")
    file_parser.add_argument("config_file", help="experiment YAML, e.g. tuned_examples/mag_smax_2s3z.yaml")
    file_parser.add_argument("--stop", type=_json_arg, help='stop criteria (JSON) replacing the file\'s, e.g. \'{"training_iteration": 5}\'; {} keeps them')
    file_parser.add_argument("--config", type=_json_arg, help="config overrides (JSON), deep-merged into `config:`")
    file_parser.add_argument("--ray-address", help="address of an existing Ray cluster (e.g. 'auto')")
    file_parser.add_argument("--num-cpus", type=int, help="CPUs for a local Ray instance")
    file_parser.add_argument("--num-gpus", type=int, help="GPUs for a local Ray instance")
    file_parser.add_argument("--storage-path", help="where trial folders (results, checkpoints, TensorBoard) go")
    file_parser.add_argument("--resume", action="store_true",
                             help="continue an interrupted (Ctrl-C) or crashed run of the same file and storage "
                                  "path from each trial's last checkpoint; starts afresh if there is none")
    evaluate = commands.add_parser("evaluate", help="greedy episodes of a MAG checkpoint: win rate, return, GIF")
    evaluate.add_argument("checkpoint", help="a checkpoint_NNNNNN folder of a trial (printed by `rllib train`)")
    evaluate.add_argument("--episodes", type=int, default=32, help="greedy episodes to play (default 32)")
    evaluate.add_argument("--map", help="another map of the same env than the one trained on")
    evaluate.add_argument("--seed", type=int, default=0, help="env seed of the first episode (default 0)")
    evaluate.add_argument("--render", metavar="OUT.gif", help="write the first episode as an animated GIF (SMAX)")
    plot = commands.add_parser("plot", help="learning curves of a trial (or all trials of an experiment) as PNG")
    plot.add_argument("trial_dir", help="a trial folder, or the experiment folder above several")
    plot.add_argument("--out", metavar="OUT.png", help="where to write (default: TRIAL_DIR/learning_curves.png)")
    file_parser.add_argument("-v", "--verbose", action="count", default=0,
                             help="Tune's own status tables and result dumps instead of the progress table (-v, -vv)")
    return parser


def train_file(args: argparse.Namespace) -> int:
    import ray
    from ray import tune

    import rllib_mag
    from rllib_mag.interrupt import GracefulInterrupt
    from rllib_mag.progress import ProgressTable

    if args.resume and args.stop:
        raise CLIError("--resume continues each trial with the stop criteria its run started with (Tune keeps them "
                       "in the experiment state); drop --stop")
    rllib_mag.register()  # into the registry this Ray session will hold (and the one `validate` checks)
    experiments = build_experiments(args.config_file, args.stop, args.config, args.storage_path)
    if args.ray_address and (args.num_cpus or args.num_gpus):
        raise CLIError("--num-cpus/--num-gpus start a local Ray instance; they cannot be combined with --ray-address")
    if args.ray_address:
        check_ray_address(args.ray_address)
    if args.num_gpus:
        check_local_gpus(args.num_gpus)
    ray.init(address=args.ray_address, num_cpus=args.num_cpus, num_gpus=args.num_gpus,
             include_dashboard=False, log_to_driver=args.verbose > 0)
    progress, interrupt = ProgressTable(rows=args.verbose == 0), GracefulInterrupt()
    try:
        if not args.ray_address:
            check_local_resources(experiments, ray.cluster_resources())
        interrupt.install()
        trials = tune.run_experiments(
            [tune.Experiment(name=name, **spec) for name, spec in experiments.items()],
            verbose=min(args.verbose, 3), raise_on_failed_trial=False, callbacks=[progress, interrupt],
            resume="AUTO+ERRORED" if args.resume else False,
        )
    finally:
        ray.shutdown()
    for trial in trials:
        print(progress.summary(trial))
    if interrupt.requested:
        argv = _without_flags(sys.argv[1:], {"--resume": 0, "--stop": 1})
        print(f"interrupted; continue from the checkpoints with: rllib {shlex.join(argv)} --resume")
        return 130
    return 1 if any(trial.status == "ERROR" for trial in trials) else 0


def _without_flags(argv: list[str], flags: dict[str, int]) -> list[str]:
    """`argv` without the given flags, each followed by its number of values (`--flag=value` forms too)."""
    kept, skip = [], 0
    for arg in argv:
        if skip:
            skip -= 1
        elif arg in flags:
            skip = flags[arg]
        elif arg.split("=", 1)[0] not in flags:
            kept.append(arg)
    return kept


def evaluate_checkpoint(args: argparse.Namespace) -> int:
    import torch

    from rllib_mag.evaluation import CheckpointError, evaluate, load_policy

    torch.set_num_threads(1)
    if args.render and not args.render.endswith(".gif"):
        raise CLIError(f"--render {args.render} is invalid: give a .gif file name")
    try:
        policy = load_policy(args.checkpoint)
        print(f"evaluating {args.checkpoint} on {policy.env}, map {args.map or policy.env_config.get('map_name')}")
        result = evaluate(policy, args.episodes, args.seed, args.map, args.render)
    except (CheckpointError, ValueError) as err:
        raise CLIError(str(err)) from err
    print(result.report())
    if args.render:
        print(f"episode 1 animated in {args.render}")
    return 0


def plot_trial(args: argparse.Namespace) -> int:
    from rllib_mag.plots import plot_trials

    try:
        print(f"learning curves in {plot_trials(args.trial_dir, args.out)}")
    except FileNotFoundError as err:
        raise CLIError(str(err)) from err
    return 0


COMMANDS = {"train": train_file, "evaluate": evaluate_checkpoint, "plot": plot_trial}


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except CLIError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
