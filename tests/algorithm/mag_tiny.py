"""A tiny MAG config for tests: every phase of Algorithm 1 runs, an iteration takes seconds."""

#: Config keys (YAML names) of a MAG run small enough for CI: every phase of Algorithm 1 still runs.
TINY = {
    "env_config": {"map_name": "3s_vs_3z"},
    "world_model_preset": "small",
    "world_model_overrides": {"hidden": 32, "embed": 32, "deter": 32, "n_categoricals": 4, "n_classes": 4,
                              "attn_ff": 32, "head_hidden": 32},
    "world_model_train_steps": 2, "model_reward_train_steps": 2, "batch_size_B": 4, "batch_length_T": 8,
    "warmup_steps": 40, "imagination_starts_M": 16, "rollout_length_k": 4, "planning_horizon_H": 2,
    "planning_candidates_L": 2, "synthetic_capacity": 64, "policy_rounds": 1, "ppo_epochs": 1,
    "ppo_minibatch_size": 32, "episodes_per_iteration": 1, "num_env_runners": 0, "num_model_rollout_actors": 1,
    "num_cpus_per_rollout_actor": 0.5, "compile": False,
}


def tiny_config(**overrides):
    from rllib_mag import MAGConfig

    config = MAGConfig().environment("smax_team").update_from_dict({**TINY, **overrides})
    return config.debugging(seed=0)
