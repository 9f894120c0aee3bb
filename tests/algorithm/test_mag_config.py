"""`MAGConfig`: defaults, builder groups, and every bad value `validate()` rejects before any actor starts."""

import pytest
from ray.tune.registry import _global_registry

import rllib_mag
from rllib_mag import MAG, MAGConfig
from rllib_mag.planning.model_reward import PAPER_TERMS


@pytest.fixture(autouse=True)
def registered():
    rllib_mag.register()


def valid_config() -> MAGConfig:
    return MAGConfig().environment("smax_team", env_config={"map_name": "3s_vs_3z"})


def test_defaults_are_the_reference_settings():
    config = MAGConfig()
    assert config.algo_class is MAG
    assert (config.world_model_lr, config.actor_lr, config.critic_lr, config.model_reward_lr) == (5e-4,) * 4
    assert (config.world_model_train_steps, config.model_reward_train_steps) == (60, 60)
    assert (config.batch_size_B, config.batch_length_T, config.replay_capacity, config.warmup_steps) == (
        40, 20, 250_000, 500)
    assert (config.imagination_starts_M, config.rollout_length_k, config.planning_horizon_H,
            config.planning_candidates_L) == (720, 15, 6, 4)
    assert (config.policy_rounds, config.ppo_epochs, config.ppo_minibatch_size, config.clip_param) == (4, 5, 2000, 0.2)
    assert (config.entropy_coeff, config.entropy_annealing, config.gamma, config.lambda_) == (1e-3, 0.99998, 0.99, 0.95)
    assert config.world_model_preset == "paper" and config.mode == "mag" and config.planning_selection == "per_start"
    assert config.model_error_terms == PAPER_TERMS
    valid_config().validate()


def test_builder_groups_set_attributes_and_planning_modes():
    config = (valid_config().world_model(preset="small", lr=1e-3, train_steps=7)
              .model_reward(train_steps=3).planning(planning_horizon_H=3, planning_candidates_L=5, selection="global")
              .rollout_actors(num_model_rollout_actors=2).training(ppo_epochs=2, lr=None))
    assert (config.world_model_preset, config.world_model_lr, config.world_model_train_steps) == ("small", 1e-3, 7)
    assert (config.model_reward_train_steps, config.num_model_rollout_actors, config.ppo_epochs) == (3, 2, 2)
    planning = config.planning_settings()
    assert (planning.planning_horizon_H, planning.planning_candidates_L, planning.planning_selection,
            planning.mode) == (3, 5, "global", "mag")
    assert config.copy(copy_frozen=False).planning(mode="mamba").planning_settings().n_candidates == 1


def test_torch_core_settings_are_derived_from_every_mag_key():
    """`planning_settings`, `ppo_settings`, `model_reward_label_settings`: each MAG key reaches its core field."""
    config = (valid_config()
              .planning(rollout_length_k=9, planning_horizon_H=4, planning_candidates_L=3, selection="global",
                        discount=0.9, availability="threshold", availability_threshold=0.3)
              .training(ppo_epochs=3, ppo_minibatch_size=500, clip_param=0.1, entropy_coeff=0.01,
                        entropy_annealing=0.5, policy_grad_clip=7.0, lambda_=0.8, actor_lr=1e-4, critic_lr=2e-4,
                        actor_weight_decay=0.0, normalize_advantages=False)
              .model_reward(label="posterior", error_terms=("kl", "reward"), label_candidates=2,
                            reconstruction_reduction="sum"))
    config.gamma = 0.9
    config.validate()
    planning = config.planning_settings()
    assert (planning.rollout_length_k, planning.planning_horizon_H, planning.planning_candidates_L,
            planning.planning_selection, planning.planning_discount, planning.imagined_availability,
            planning.availability_threshold, planning.mode) == (9, 4, 3, "global", 0.9, "threshold", 0.3, "mag")
    ppo = config.ppo_settings()
    assert (ppo.ppo_epochs, ppo.ppo_minibatch_size, ppo.clip_param, ppo.entropy_coeff, ppo.entropy_annealing,
            ppo.policy_grad_clip, ppo.gamma, ppo.lambda_, ppo.actor_lr, ppo.critic_lr, ppo.actor_weight_decay,
            ppo.normalize_advantages) == (
        3, 500, 0.1, 0.01, 0.5, 7.0, 0.9, 0.8, 1e-4, 2e-4, 0.0, False)
    label = config.model_reward_label_settings()
    assert (label.model_reward_label, label.model_error_terms, label.model_reward_label_candidates,
            label.model_error_reconstruction_reduction) == (
        "posterior", ("kl", "reward"), 2, "sum")


def test_synthetic_capacity_defaults_to_one_imagination_round():
    config = valid_config().planning(imagination_starts_M=64, rollout_length_k=5)
    assert config.synthetic_capacity is None and config.synthetic_buffer_capacity() == 64 * 5
    assert config.rollout_actors(synthetic_capacity=1000).synthetic_buffer_capacity() == 1000


def test_dict_round_trip_keeps_mag_keys():
    config = valid_config().planning(planning_horizon_H=2)
    restored = MAGConfig.from_dict(config.to_dict())
    assert restored.planning_horizon_H == 2 and restored.env == "smax_team"
    restored.validate()


@pytest.mark.parametrize("overrides, message", [
    ({"planning_horizon_H": 0}, r"planning_horizon_H=0 is invalid: must be an int >= 1"),
    ({"planning_candidates_L": 0}, r"planning_candidates_L=0 is invalid: must be an int >= 1"),
    ({"planning_horizon_H": 16}, r"planning_horizon_H=16 is invalid: must be <= rollout_length_k=15"),
    ({"world_model_lr": -1e-3}, r"world_model_lr=-0.001 is invalid: must be > 0"),
    ({"actor_lr": 0.0}, r"actor_lr=0.0 is invalid: must be > 0"),
    ({"replay_capacity": 100}, r"replay_capacity=100 is invalid: must be >= warmup_steps \(500\)"),
    ({"world_model_preset": "huge"}, r"world_model_preset='huge' is invalid: must be one of \('paper', 'small'\)"),
    ({"mode": "dreamer"}, r"mode='dreamer' is invalid: must be one of \('mag', 'mamba'\)"),
    ({"planning_selection": "best"}, r"planning_selection='best' is invalid"),
    ({"gamma": 1.5}, r"gamma=1.5 is invalid: must be in \(0, 1\]"),
    ({"model_error_terms": ("kl", "typo")}, r"model_error_terms=.* is invalid: a non-empty subset of"),
    ({"training_ratio": -1.0}, r"training_ratio=-1.0 is invalid: must be > 0, or None \(one update per episode\)"),
    ({"gamma": "0.99"}, r"MAGConfig.gamma='0.99' is invalid: must be in \(0, 1\]"),
    ({"actor_lr": "5e-4"}, r"MAGConfig.actor_lr='5e-4' is invalid: must be > 0 \(a string: write the number "
                           r"without quotes\)"),
    ({"entropy_coeff": -0.1}, r"MAGConfig.entropy_coeff=-0.1 is invalid: must be >= 0"),
    ({"num_cpus_per_rollout_actor": -1}, r"MAGConfig.num_cpus_per_rollout_actor=-1 is invalid: must be >= 0"),
    ({"ppo_epochs": True}, r"MAGConfig.ppo_epochs=True is invalid: must be an int >= 1"),
    ({"num_env_runners": -1}, r"MAGConfig.num_env_runners=-1 is invalid: must be an int >= 0"),
    ({"num_envs_per_env_runner": 0}, r"MAGConfig.num_envs_per_env_runner=0 is invalid: must be an int >= 1"),
    ({"imagined_availability": "mean"}, r"imagined_availability='mean' is invalid: must be one of \('sample', "
                                        r"'threshold'\)"),
    ({"availability_threshold": 1.0}, r"availability_threshold=1.0 is invalid: must be in \(0, 1\)"),
    ({"actor_weight_decay": -1.0}, r"actor_weight_decay=-1.0 is invalid: must be >= 0"),
    ({"normalize_advantages": "yes"}, r"normalize_advantages='yes' is invalid: must be true or false"),
    ({"model_error_reconstruction_reduction": "max"}, r"model_error_reconstruction_reduction='max' is invalid"),
    ({"synthetic_capacity": 0}, r"synthetic_capacity=0 is invalid: must be an int >= 1, or None for M x k"),
    ({"synthetic_capacity": "3840"}, r"synthetic_capacity='3840' is invalid: must be an int >= 1"),
    ({"model_reward_label": "prior"}, r"model_reward_label='prior' is invalid: must be one of \('candidate', "
                                      r"'posterior'\)"),
    ({"model_reward_label_candidates": 0}, r"model_reward_label_candidates=0 is invalid: must be an int >= 1"),
    ({"model_error_eval_interval": -1}, r"model_error_eval_interval=-1 is invalid: must be an int >= 0"),
    ({"model_error_eval_interval": 2, "model_error_eval_starts": 0},
     r"model_error_eval_starts=0 is invalid: must be an int >= 1"),
    ({"num_model_rollout_actors": -1}, r"num_model_rollout_actors=-1 is invalid"),
    ({"world_model_train_steps": 2.5}, r"world_model_train_steps=2.5 is invalid: must be an int"),
    ({"world_model_overrides": {"hiden": 8}}, r"world_model_overrides=.* is invalid: unknown WorldModelConfig keys"),
    ({"world_model_overrides": {"model_grad_clip": 5.0}}, r"\[.model_grad_clip.\] are set elsewhere"),
    ({"world_model_overrides": {"device": "cuda"}}, r"\[.device.\] are set elsewhere.*num_gpus_per_learner"),
    ({"num_learners": 3}, r"batch_size_B=40 is invalid with num_learners=3: must be a multiple of num_learners"),
    ({"num_learners": 2, "imagination_starts_M": 721},
     r"imagination_starts_M=721 is invalid with num_learners=2: must be a multiple"),
    ({"num_learners": 2, "ppo_minibatch_size": 2001}, r"ppo_minibatch_size=2001 is invalid with num_learners=2"),
    ({"mag_planing_horizon": 3}, r"unknown MAGConfig key 'mag_planing_horizon'"),
    ({"planing_horizon_H": 3}, r"unknown MAGConfig key 'planing_horizon_H'; did you mean 'planning_horizon_H'"),
])
def test_validate_rejects_bad_values(overrides, message):
    config = valid_config().update_from_dict(overrides)
    with pytest.raises(ValueError, match=message):
        config.validate()


@pytest.mark.parametrize("key, value, instead", [
    ("lr", 1e-2, "world_model_lr, model_reward_lr, actor_lr and critic_lr"), ("num_epochs", 10, "ppo_epochs"),
    ("minibatch_size", 64, "ppo_minibatch_size"), ("train_batch_size_per_learner", 4000, "imagination_starts_M"),
    ("grad_clip", 1.0, "model_grad_clip and policy_grad_clip"),
    ("model", {"fcnet_hiddens": [64]}, "world_model_preset and world_model_overrides")])
def test_inherited_rllib_keys_mag_ignores_are_rejected_with_the_mag_key(key, value, instead):
    with pytest.raises(ValueError, match=rf"MAGConfig.{key}=.* is an RLlib setting MAG does not use; set {instead}"):
        valid_config().update_from_dict({key: value}).validate()
    with pytest.raises(ValueError, match=rf"MAGConfig.{key}="):
        valid_config().training(**{key: value}).validate()


def test_env_names_are_checked_against_the_registry(monkeypatch):
    """A misspelt env fails in `validate`, not inside a remote env runner; this package's names register
    themselves on first use (a checkpoint restored in a fresh process, before any `rllib_mag.register()`)."""
    with pytest.raises(ValueError, match=r"unknown env 'smax_teem': did you mean 'smax_team'\? rllib-mag provides"):
        valid_config().environment("smax_teem").validate()
    monkeypatch.setattr(_global_registry, "_to_flush", {})  # a fresh process: nothing registered yet
    valid_config().validate()
    assert _global_registry.contains("env_creator", "smax_team")
    monkeypatch.setattr(_global_registry, "_to_flush", {})
    rllib_mag.MaskedPPOConfig().environment("smax", env_config={"map_name": "3s_vs_3z"}).validate()
    assert _global_registry.contains("env_creator", "smax")


def test_validate_needs_an_environment():
    with pytest.raises(ValueError, match="MAGConfig needs an environment"):
        MAGConfig().validate()


def test_bad_config_fails_before_any_actor_starts():
    """`build()` validates first: no Ray instance is started for a bad config."""
    import ray

    with pytest.raises(ValueError, match="planning_horizon_H=0"):
        valid_config().planning(planning_horizon_H=0).build()
    assert not ray.is_initialized()


def test_resource_request_adds_one_bundle_per_rollout_actor():
    config = valid_config().rollout_actors(num_model_rollout_actors=2, num_cpus_per_rollout_actor=1,
                                           num_gpus_per_rollout_actor=0.5)
    bundles = MAG.default_resource_request(config).bundles
    assert bundles[-2:] == [{"CPU": 1, "GPU": 0.5}] * 2
    assert len(bundles) == len(MAG.default_resource_request(config.copy(copy_frozen=False).rollout_actors(
        num_model_rollout_actors=0)).bundles) + 2


def test_real_smac_example_fails_fast_without_starcraft(tmp_path, monkeypatch):
    """`mag_corridor.yaml` stops before Ray starts, with the smac backend's fix-it message."""
    import subprocess
    import sys
    from pathlib import Path

    from rllib_mag.envs.smac import import_starcraft2env

    monkeypatch.setenv("SC2PATH", str(tmp_path / "no_sc2"))
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.run([str(Path(sys.executable).parent / "rllib"), "train", "file",
                           str(repo / "tuned_examples" / "mag_corridor.yaml")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "needs real SMAC and StarCraft II" in proc.stderr
    try:  # which piece is missing first: SMAC itself (CI) or, where SMAC is installed, StarCraft II
        import_starcraft2env()
        missing = "StarCraft II not found"
    except ImportError:
        missing = "pip install git+https://github.com/oxwhirl/smac.git"
    assert missing in proc.stderr


def test_planning_dtype_is_validated():
    assert valid_config().planning(dtype="bfloat16").planning_dtype == "bfloat16"
    with pytest.raises(ValueError, match=r"planning_dtype='float16' is invalid: must be one of \('float32', 'bfloat16'\)"):
        valid_config().planning(dtype="float16").validate()


@pytest.mark.parametrize("env", ["pettingzoo_team", "smac_team"])
def test_true_model_error_needs_a_restorable_simulator(env):
    maps = {"pettingzoo_team": "simple_spread", "smac_team": "3s_vs_3z"}
    config = MAGConfig().environment(env, env_config={"map_name": maps[env]}).model_error_evaluation(interval=5)
    with pytest.raises(ValueError, match=rf"model_error_eval_interval=5 is invalid with env '{env}': the true model "
                                         r"error replays imagined actions from kept simulator states, which only "
                                         r"\('smax_team',\) can restore"):
        config.validate()
    config.model_error_evaluation(interval=0).environment("smax_team", env_config={"map_name": "3s_vs_3z"}).validate()


def test_compile_and_in_learner_imagination_are_validated():
    assert valid_config().training(compile=False).compile is False and valid_config().compile is True
    with pytest.raises(ValueError, match=r"compile='yes' is invalid: must be true or false"):
        valid_config().update_from_dict({"compile": "yes"}).validate()
    with pytest.raises(ValueError, match=r"planning_dtype='bfloat16' is invalid with num_model_rollout_actors=0"):
        valid_config().planning(dtype="bfloat16").rollout_actors(num_model_rollout_actors=0).validate()
