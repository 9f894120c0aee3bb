"""Every bad input a user can give `rllib train` fails before Ray starts, naming the key, the value and the fix.

One table for experiment files (`build_experiments` is all the CLI runs before `ray.init`), one for flags.
"""

from __future__ import annotations

import re

import pytest

from rllib_mag.cli import CLIError, build_experiments, main

MAP = "env_config: {map_name: 3s_vs_3z}"


def mag(config: str = "", env: str = "smax_team", extra: str = "") -> str:
    """A MAG experiment file with `config` entries (YAML flow style) added to a valid env_config."""
    entries = ", ".join(part for part in (config, "" if "env_config" in config else MAP) if part)
    return f"exp: {{run: MAG, env: {env}, config: {{{entries}}}{extra}}}"


BAD_FILES = [
    # YAML itself
    ("exp: {run: MAG, config: {lr: 0.1}\n  bad: [", r"exp.yaml is not valid YAML: "),
    ("- a list", "expected a mapping of experiment names"),
    ("exp: 3", "experiment 'exp': expected a mapping, got int"),
    # experiment keys, stop keys, checkpoint_config
    ("exp: {env: smax_team}", r"needs `run:` \(or `algo:`\)"),
    ("exp: {run: MAGG}", "MAGG"),
    (mag(extra=", stopp: {training_iteration: 1}"), "unknown key 'stopp'; did you mean 'stop'"),
    (mag(extra=", stop: {training_iteraton: 3}"),
     "unknown stop key 'training_iteraton'; did you mean 'training_iteration'.*would never stop on it"),
    (mag(extra=", stop: {env_steps: 3}"), "unknown stop key 'env_steps'"),
    (mag(extra=", checkpoint_config: {checkpoint_freq: 5}"),
     "unknown checkpoint_config key 'checkpoint_freq'; did you mean 'checkpoint_frequency'"),
    # numbers given as strings (a quoted number; unquoted 5e-4 is read as a float)
    (mag("gamma: '0.99'"), r"MAGConfig.gamma='0.99' is invalid: must be in \(0, 1\] \(a string: write the number"),
    (mag("world_model_lr: '5e-4'"), r"world_model_lr='5e-4' is invalid: must be > 0 \(a string"),
    (mag("ppo_epochs: '5'"), r"ppo_epochs='5' is invalid: must be an int >= 1 \(a string"),
    # values
    (mag("planning_horizon_H: 0"), "planning_horizon_H=0 is invalid"),
    (mag("planning_horizon_H: 20, rollout_length_k: 15"), "planning_horizon_H=20"),
    (mag("planning_candidates_L: 0"), "planning_candidates_L=0 is invalid"),
    (mag("planning_selection: best"), "planning_selection='best' is invalid"),
    (mag("mode: magg"), "mode='magg' is invalid"),
    (mag("clip_param: -0.2"), "clip_param=-0.2 is invalid"),
    (mag("entropy_coeff: -1.0"), "entropy_coeff=-1.0 is invalid: must be >= 0"),
    (mag("batch_length_T: 2"), "batch_length_T=2 is invalid: must be an int >= 3"),
    (mag("imagination_starts_M: 0"), "imagination_starts_M=0 is invalid: must be an int >= 1"),
    (mag("normalize_advantages: 'yes'"), "normalize_advantages='yes' is invalid: must be true or false"),
    (mag("world_model_preset: tiny"), "world_model_preset='tiny' is invalid"),
    (mag("world_model_overrides: {hiden: 8}"), "unknown WorldModelConfig keys"),
    (mag("world_model_overrides: {model_grad_clip: 5.0}"), r"\['model_grad_clip'\] are set elsewhere"),
    (mag("planning_dtype: float16"), "planning_dtype='float16' is invalid"),
    (mag("planning_dtype: bfloat16, num_model_rollout_actors: 0"), "bfloat16 planning runs on rollout actors"),
    (mag("max_consecutive_sample_failures: 0"), "max_consecutive_sample_failures=0 is invalid: must be an int >= 1"),
    (mag("num_envs_per_env_runner: 0"), "num_envs_per_env_runner=0 is invalid: must be an int >= 1"),
    (mag("num_env_runners: -1"), "num_env_runners=-1 is invalid: must be an int >= 0"),
    (mag("num_learners: 3"), "batch_size_B=40 is invalid with num_learners=3"),
    # unknown MAG keys and inherited RLlib keys MAG ignores
    (mag("mag_planing_horizon: 3"), "unknown config key 'mag_planing_horizon'"),
    (mag("planning_horizon: 3"), "did you mean 'planning_horizon_H'"),
    (mag("lr: 0.1"), "MAGConfig.lr=0.1 is an RLlib setting MAG does not use; set world_model_lr"),
    (mag("num_epochs: 3"), "num_epochs=3 is an RLlib setting MAG does not use; set ppo_epochs"),
    (mag("minibatch_size: 64"), "minibatch_size=64 is an RLlib setting MAG does not use; set ppo_minibatch_size"),
    (mag("grad_clip: 1.0"), "grad_clip=1.0 is an RLlib setting MAG does not use; set model_grad_clip"),
    # envs, maps and env_config
    (mag(env="smax_teem"), "unknown env 'smax_teem': did you mean 'smax_team'"),
    ("exp: {run: MaskedPPO, env: smax_teem, config: {" + MAP + "}}", "unknown env 'smax_teem'"),
    (mag("env_config: {map_name: 3s_vs_3zz}"), "unknown map '3s_vs_3zz' for the smax backend; available: "),
    (mag("env_config: {map_name: 2s_vs_1sc}"), "map '2s_vs_1sc' is not available on SMAX"),
    (mag("env_config: {map_nam: 3s_vs_3z}"), "unknown env_config key 'map_nam' for the smax backend; did you mean "
                                             "'map_name'"),
    (mag("env_config: {map_name: 3s_vs_3z, seed: abc}"), "env_config seed='abc' is invalid: must be an int"),
    (mag("env_config: {map_name: 3s_vs_3z, episode_limit: 0}"), "env_config episode_limit=0 is invalid"),
    (mag("env_config: {map_name: 3s_vs_3z, invalid_actions: replce}"),
     r"env_config invalid_actions='replce' is invalid: must be one of \('raise', 'replace'\)"),
    (mag("env_config: {map_name: 3s_vs_3z, attack_mode: nearest}"), "attack_mode must be 'closest' or 'random'"),
    (mag("env_config: {map_name: 3s_vs_3z, backend: smac}"), "env_config backend='smac' is invalid"),
    ("exp: {run: MaskedPPO, env: smax_team, config: {env_config: {map_name: 3s_vs_3zz}}}", "unknown map '3s_vs_3zz'"),
    (mag("env_config: {map_name: simple_spread, max_cycles: -1}", env="pettingzoo_team"),
     "env_config max_cycles=-1 is invalid: must be an int >= 1"),
    (mag("env_config: {map_name: simple_spread, N: 0}", env="pettingzoo_team"), "env_config N=0 is invalid"),
    (mag("env_config: {map_name: simple_spred}", env="pettingzoo_team"), "unknown map 'simple_spred'"),
    (mag("env_config: {map_name: simple_spread, M: 2}", env="pettingzoo_team"),
     "unknown env_config key 'M' for the pettingzoo backend"),
    # real SMAC: a map typo is told apart from a missing install
    (mag("env_config: {map_name: 3m_typo}", env="smac_team"), "map_name='3m_typo' is not a SMAC map"),
    (mag("env_config: {map_name: 3m}", env="smac_team"), "needs real SMAC and StarCraft II: SMAC is not installed"),
]


@pytest.mark.parametrize("text, message", BAD_FILES, ids=[f"{i:02d}" for i in range(len(BAD_FILES))])
def test_bad_experiment_file_fails_before_ray_with_the_key_and_fix(tmp_path, text, message):
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    with pytest.raises(CLIError, match=message):
        build_experiments(str(path))


def test_the_table_is_large_enough():
    assert len(BAD_FILES) >= 40


def test_unquoted_exponent_numbers_are_floats(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(mag("world_model_lr: 5e-4, actor_lr: 1E-3, replay_capacity: 100000"))
    config = build_experiments(str(path))["exp"]["config"]
    assert (config["world_model_lr"], config["actor_lr"], config["replay_capacity"]) == (5e-4, 1e-3, 100000)


BAD_FLAGS = [
    (["--ray-address", "127.0.0.1:1"], r"--ray-address 127.0.0.1:1: no Ray head answers there"),
    (["--ray-address", "localhost"], r"--ray-address localhost is invalid: give HOST:PORT"),
    (["--num-gpus", "64"], r"--num-gpus 64 is invalid: torch sees \d+ GPU"),
    (["--ray-address", "auto", "--num-cpus", "2"], "cannot be combined with --ray-address"),
    (["--resume", "--stop", '{"training_iteration": 3}'], "--resume continues each trial with the stop criteria"),
    (["--stop", "[1]"], "expected a JSON object"),
    (["--config", "{bad json"], "not valid JSON"),
]


@pytest.mark.parametrize("flags, message", BAD_FLAGS, ids=[f"{i:02d}" for i in range(len(BAD_FLAGS))])
def test_bad_flag_fails_at_once_with_a_message(tmp_path, capsys, flags, message):
    path = tmp_path / "exp.yaml"
    path.write_text(mag())
    argv = ["train", "file", str(path), *flags]
    if flags[0] in ("--stop", "--config"):  # argparse rejects the value itself
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        code = exit_info.value.code
    else:
        code = main(argv)
    assert code == 2 and re.search(message, capsys.readouterr().err)
