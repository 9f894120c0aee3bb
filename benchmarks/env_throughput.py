"""Environment throughput (env-steps/s; one step of one env copy = 1) on SMAX maps.

Paths measured (random valid actions; compilation excluded by a warm-up run):
- ``raw SMAX single``: JaxMARL's jitted auto-resetting ``step``, actions sampled inside the jit;
- ``raw SMAX vmap``: the same, ``jax.vmap``-ed over ``--num-envs`` copies;
- ``TeamEnv single``: our backend + team view (numpy observations, checks, episode bookkeeping);
- ``SMAXTeamVectorEnv``: our vector env, ``--num-envs`` copies in one vmapped call;
- ``RLlib SingleAgentEnvRunner`` on ``smax_team`` (1 env, and ``--num-envs`` via
  ``gym_env_vectorize_mode="vector_entry_point"``) and ``RLlib MultiAgentEnvRunner`` on ``smax``,
  all local (``num_env_runners=0``) with ``sample(random_actions=True)``.

Usage: ``python benchmarks/env_throughput.py [--maps 3s_vs_5z corridor] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np


def rate(run: Callable[[], int], repeats: int) -> float:
    """Median env-steps/s of ``run`` (which returns the steps it made) after one warm-up."""
    run()
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        steps = run()
        rates.append(steps / (time.perf_counter() - start))
    return statistics.median(rates)


def raw_smax(map_name: str, num_envs: int | None, steps: int) -> Callable[[], int]:
    """JaxMARL SMAX alone: ``steps`` jitted (optionally vmapped) auto-resetting steps."""
    import jax
    import jax.numpy as jnp

    from rllib_mag.envs.smax import smax_core, smax_options

    env = smax_core(smax_options(map_name)).env

    def step(key: jax.Array, state: object) -> tuple[jax.Array, object]:
        key, act_key, step_key = jax.random.split(key, 3)
        avail = env.get_avail_actions(state)
        logits = jnp.log(jnp.stack([avail[a] for a in env.agents]).astype(jnp.float32))
        actions = jax.random.categorical(act_key, logits)
        _, state, _, _, _ = env.step(step_key, state, {a: actions[i] for i, a in enumerate(env.agents)})
        return key, state

    def reset(key: jax.Array) -> object:
        return env.reset(key)[1]

    batch = num_envs or 1
    if num_envs is None:
        keys, reset_fn, step_fn = jax.random.PRNGKey(0), jax.jit(reset), jax.jit(step)
    else:
        keys = jax.random.split(jax.random.PRNGKey(0), num_envs)
        reset_fn, step_fn = jax.jit(jax.vmap(reset)), jax.jit(jax.vmap(step))
    state = reset_fn(keys)

    def run() -> int:
        nonlocal keys, state
        for _ in range(steps):
            keys, state = step_fn(keys, state)
        jax.block_until_ready(state)
        return steps * batch

    return run


def team_env(map_name: str, steps: int) -> Callable[[], int]:
    """Our SMAX backend behind ``TeamEnv``, numpy-sampled valid actions."""
    from rllib_mag.envs.team import TeamEnv

    env, rng = TeamEnv({"map_name": map_name, "seed": 0}), np.random.default_rng(0)

    def run() -> int:
        obs, _ = env.reset()
        for _ in range(steps):
            obs, _, terminated, truncated, _ = env.step((rng.random(obs["action_mask"].shape) * obs["action_mask"]).argmax(-1))
            if terminated or truncated:
                obs, _ = env.reset()
        return steps

    return run


def vector_env(map_name: str, num_envs: int, steps: int) -> Callable[[], int]:
    """Our ``SMAXTeamVectorEnv``, numpy-sampled valid actions."""
    from rllib_mag.envs.smax_vector import SMAXTeamVectorEnv

    env, rng = SMAXTeamVectorEnv(num_envs, map_name, seed=0), np.random.default_rng(0)
    obs, _ = env.reset()

    def run() -> int:
        nonlocal obs
        for _ in range(steps):
            obs, *_ = env.step((rng.random(obs["action_mask"].shape) * obs["action_mask"]).argmax(-1))
        return steps * num_envs

    return run


def rllib_runner(map_name: str, env_name: str, num_envs: int, steps: int) -> Callable[[], int]:
    """A local RLlib EnvRunner sampling ``steps`` env steps with ``random_actions=True``."""
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.connectors.env_to_module import FlattenObservations
    from ray.rllib.env.multi_agent_env_runner import MultiAgentEnvRunner
    from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner

    import rllib_mag.envs

    rllib_mag.envs.register_envs()
    multi_agent = env_name == "smax"
    config = PPOConfig().environment(env_name, env_config={"map_name": map_name, "invalid_actions": "replace"})
    config = config.env_runners(
        num_env_runners=0,
        num_envs_per_env_runner=num_envs,
        gym_env_vectorize_mode="vector_entry_point" if num_envs > 1 else "sync",
        env_to_module_connector=lambda env, spaces=None, device=None: FlattenObservations(multi_agent=multi_agent),
    )
    if multi_agent:
        config = config.multi_agent(policies={"shared"}, policy_mapping_fn=rllib_mag.envs.shared_policy_mapping)
    runner = (MultiAgentEnvRunner if multi_agent else SingleAgentEnvRunner)(config=config)

    def run() -> int:
        episodes = runner.sample(num_timesteps=steps, random_actions=True)
        return sum(e.env_steps() for e in episodes) if multi_agent else sum(len(e) for e in episodes)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--maps", nargs="+", default=["3s_vs_5z", "corridor"])
    parser.add_argument("--num-envs", type=int, default=64)
    parser.add_argument("--steps", type=int, default=2000, help="single-env steps per repeat")
    parser.add_argument("--vector-steps", type=int, default=100, help="vector steps per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    n, s, vs = args.num_envs, args.steps, args.vector_steps
    paths: dict[str, Callable[[str], Callable[[], int]]] = {
        "raw SMAX single (jit)": lambda m: raw_smax(m, None, s),
        f"raw SMAX vmap {n}": lambda m: raw_smax(m, n, vs),
        "TeamEnv single": lambda m: team_env(m, s),
        f"SMAXTeamVectorEnv {n}": lambda m: vector_env(m, n, vs),
        "RLlib SingleAgentEnvRunner, smax_team, 1 env": lambda m: rllib_runner(m, "smax_team", 1, s),
        f"RLlib SingleAgentEnvRunner, smax_team, vector {n}": lambda m: rllib_runner(m, "smax_team", n, vs * n),
        "RLlib MultiAgentEnvRunner, smax, 1 env": lambda m: rllib_runner(m, "smax", 1, s),
    }
    results = {name: {m: rate(make(m), args.repeats) for m in args.maps} for name, make in paths.items()}
    print(f"\nenv-steps/s, median of {args.repeats} (after a warm-up run)\n")
    print("| path | " + " | ".join(args.maps) + " |")
    print("|---|" + "---:|" * len(args.maps))
    for name, by_map in results.items():
        print(f"| {name} | " + " | ".join(f"{by_map[m]:,.0f}" for m in args.maps) + " |")
    base = results["raw SMAX single (jit)"]
    for name in ("TeamEnv single", "RLlib SingleAgentEnvRunner, smax_team, 1 env", "RLlib MultiAgentEnvRunner, smax, 1 env"):
        print(f"\n{name} / raw single: " + ", ".join(f"{m} {results[name][m] / base[m]:.0%}" for m in args.maps), end="")
    print()


if __name__ == "__main__":
    main()
