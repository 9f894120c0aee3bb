"""`MAGConfig`: every MAG hyperparameter, with the defaults of the paper / released code.

Defaults follow the released code (MAG's `configs/dreamer/DreamerLearnerConfig.py` plus MAMBA's
`optimal/starcraft` settings; `docs/algorithm.md`): model lr 5e-4, 60 world-model and 60 R_m steps per update,
40 x 20 sequences, M = 720 imagination starts, k = 15, H = 6, L = 4, 4 rounds of (imagination + 5 PPO epochs,
minibatch 2000).
Builder groups in RLlib's style: `.world_model()`, `.model_reward()`, `.planning()`, `.model_error_evaluation()`,
`.rollout_actors()` and `.training()` for the policy and the schedule.
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any

from ray.rllib.algorithms.algorithm_config import AlgorithmConfig, NotProvided
from ray.rllib.core.rl_module.rl_module import RLModuleSpec

from rllib_mag.learning.ppo import PPOConfig
from rllib_mag.metrics import WinRateCallback
from rllib_mag.models.config import LOSS_TERMS, PRESETS
from rllib_mag.planning.imagination import PlanningConfig
from rllib_mag.planning.model_reward import LABEL_MODES, PAPER_TERMS, ModelRewardLabel
from rllib_mag.validation import check_bool, check_choice, check_int, check_non_negative, check_positive

DTYPES = ("float32", "bfloat16")

#: Integer settings and their smallest valid value (the planner's and PPO's are checked by their own configs).
_INT_MINIMUMS: dict[str, int] = {
    "world_model_train_steps": 1, "batch_size_B": 1, "batch_length_T": 3, "replay_capacity": 2, "warmup_steps": 0,
    "model_reward_train_steps": 0, "imagination_starts_M": 1, "num_model_rollout_actors": 0, "policy_rounds": 1,
    "episodes_per_iteration": 1, "max_consecutive_sample_failures": 1, "model_reward_label_candidates": 1,
    "model_error_eval_interval": 0, "model_error_eval_starts": 1, "num_env_runners": 0, "num_envs_per_env_runner": 1,
}
#: `WorldModelConfig` fields that are MAG keys of the same names (the rest come from the preset and overrides).
WORLD_MODEL_KEYS = ("world_model_lr", "model_reward_lr", "model_grad_clip")
_POSITIVE = WORLD_MODEL_KEYS
_NON_NEGATIVE = ("num_cpus_per_rollout_actor", "num_gpus_per_rollout_actor")
_CHOICES: dict[str, tuple[Any, ...]] = {
    "planning_dtype": DTYPES, "world_model_dtype": DTYPES, "model_error_reconstruction_reduction": ("mean", "sum"),
    "model_reward_label": LABEL_MODES, "world_model_preset": tuple(PRESETS),
}
_BATCH_KEYS = "imagination_starts_M (PPO's data per round is M x k imagined steps) or batch_size_B"
#: Inherited `AlgorithmConfig` training settings MAG does not read, and the MAG settings to use instead.
IGNORED_RLLIB_KEYS: dict[str, str] = {
    "lr": "world_model_lr, model_reward_lr, actor_lr and critic_lr",
    "num_epochs": "ppo_epochs",
    "minibatch_size": "ppo_minibatch_size",
    "train_batch_size": _BATCH_KEYS,
    "train_batch_size_per_learner": _BATCH_KEYS,
    "grad_clip": "model_grad_clip and policy_grad_clip",
    "grad_clip_by": "model_grad_clip and policy_grad_clip (always by global norm)",
    "shuffle_batch_per_epoch": "nothing: PPO always shuffles its minibatches",
    "model": "world_model_preset and world_model_overrides",
    "optimizer": "world_model_lr, model_reward_lr, actor_lr and critic_lr (Adam)",
}


class MAGConfig(AlgorithmConfig):
    """Configuration of the MAG algorithm (Algorithm 1 of the paper) on RLlib's new API stack.

    Example::

        config = (MAGConfig().environment("smax_team", env_config={"map_name": "3s_vs_3z"})
                  .world_model(preset="small").planning(planning_horizon_H=3, planning_candidates_L=4))
        algo = config.build()
    """

    def __init__(self, algo_class: type | None = None) -> None:
        from rllib_mag.algorithm.mag import MAG

        super().__init__(algo_class=algo_class or MAG)
        # World model (Algorithm 1 line 4) and D_e.
        self.world_model_preset = "paper"
        self.world_model_overrides: dict[str, Any] = {}
        self.world_model_lr = 5e-4
        self.world_model_train_steps = 60
        self.batch_size_B = 40
        self.batch_length_T = 20
        self.model_grad_clip = 100.0
        self.world_model_dtype = "float32"
        self.replay_capacity = 250_000
        self.warmup_steps = 500
        # Model-reward predictor R_m (line 5).
        self.model_reward_lr = 5e-4
        self.model_reward_train_steps = 60
        self.model_error_terms: tuple[str, ...] = PAPER_TERMS
        self.model_reward_label = "candidate"
        self.model_reward_label_candidates = 1
        self.model_error_reconstruction_reduction = "mean"
        # Planning to predict (lines 6-15).
        self.mode = "mag"
        self.rollout_length_k = 15
        self.planning_horizon_H = 6
        self.planning_candidates_L = 4
        self.imagination_starts_M = 720
        self.planning_selection = "per_start"
        self.planning_discount = 1.0
        self.planning_dtype = "float32"
        self.imagined_availability = "sample"
        self.availability_threshold = 0.5
        # Ground-truth model error against the simulator (SMAX only), every `model_error_eval_interval` iterations.
        self.model_error_eval_interval = 0
        self.model_error_eval_starts = 32
        # Model-rollout actors and D_m.
        self.num_model_rollout_actors = 1
        self.num_cpus_per_rollout_actor = 1.0
        self.num_gpus_per_rollout_actor = 0.0
        self.synthetic_capacity: int | None = None  # None: M x k, the latest imagination round
        self.checkpoint_synthetic_buffer = False
        # Policy learning on imagined data (lines 16-18) and the schedule.
        self.actor_lr = 5e-4
        self.critic_lr = 5e-4
        self.policy_rounds = 4
        self.ppo_epochs = 5
        self.ppo_minibatch_size = 2000
        self.clip_param = 0.2
        self.entropy_coeff = 1e-3
        self.entropy_annealing = 0.99998
        self.policy_grad_clip = 100.0
        self.actor_weight_decay = 1e-5
        self.normalize_advantages = True
        self.gamma = 0.99
        self.lambda_ = 0.95
        self.episodes_per_iteration = 1
        self.training_ratio: float | None = None
        # torch.compile of the imagined step (eager where no C++ compiler is found).
        self.compile = True
        # Fault tolerance: sampling rounds in a row in which every env runner failed before the trial fails.
        self.max_consecutive_sample_failures = 3
        # RLlib settings MAG relies on.
        self.lr = None
        self.num_env_runners = 0
        self.callbacks(WinRateCallback)
        self.evaluation(evaluation_config={"explore": False})  # greedy evaluation win rate

    # ---- builder groups -------------------------------------------------------------------------
    def _set(self, **kwargs: Any) -> "MAGConfig":
        for name, value in kwargs.items():
            if value is not NotProvided:
                setattr(self, name, value)
        return self

    def world_model(self, *, preset: str = NotProvided, overrides: dict = NotProvided, lr: float = NotProvided,
                    train_steps: int = NotProvided, batch_size_B: int = NotProvided,
                    batch_length_T: int = NotProvided, grad_clip: float = NotProvided,
                    replay_capacity: int = NotProvided, warmup_steps: int = NotProvided,
                    dtype: str = NotProvided) -> "MAGConfig":
        """World model sizes, its training (Algorithm 1 line 4) and D_e.

        Args:
            preset: `"paper"` (256-wide, 32x32 latents) or `"small"` (64-wide, 8x8); `rllib_mag.models.config`.
            overrides: `WorldModelConfig` fields replacing the preset's, e.g. `{"hidden": 128}`.
            lr: Adam learning rate of the world model (`world_model_lr`, 5e-4).
            train_steps: gradient steps per learner update (`world_model_train_steps`, 60).
            batch_size_B: sequences per step, of all learners together (each trains on `B / num_learners`).
            batch_length_T: rows per sequence (20).
            grad_clip: global-norm clip of the world-model gradients (`model_grad_clip`, 100).
            replay_capacity: rows D_e keeps (250,000).
            warmup_steps: real env steps collected before the first learner update (500).
            dtype: `"float32"` or `"bfloat16"` (bf16 autocast of the loss; float32 weights, gradients and Adam;
                every loss term within 3% of float32, faster only with bf16 matrix units: `world_model_dtype`).
        """
        return self._set(world_model_preset=preset, world_model_overrides=overrides, world_model_lr=lr,
                         world_model_train_steps=train_steps, batch_size_B=batch_size_B,
                         batch_length_T=batch_length_T, model_grad_clip=grad_clip, replay_capacity=replay_capacity,
                         warmup_steps=warmup_steps, world_model_dtype=dtype)

    def model_reward(self, *, lr: float = NotProvided, train_steps: int = NotProvided,
                     error_terms: tuple[str, ...] = NotProvided, label: str = NotProvided,
                     label_candidates: int = NotProvided,
                     reconstruction_reduction: str = NotProvided) -> "MAGConfig":
        """R_m, the model-reward predictor (Algorithm 1 line 5).

        Args:
            lr: Adam learning rate of R_m (`model_reward_lr`, 5e-4).
            train_steps: R_m steps per learner update (`model_reward_train_steps`, 60).
            error_terms: the world-model errors summed into R_m's label (`model_error_terms`; the paper's terms).
            label: `"candidate"` (default, the paper): R_m sees a latent sampled from the prior at a real row's
                `h_t` and learns that candidate's own error, so it can rank the planner's candidates;
                `"posterior"`: the released code's label, the posterior's losses (`model_reward_label`).
            label_candidates: prior samples per real row with the candidate label (`model_reward_label_candidates`).
            reconstruction_reduction: the observation error in the label is the `"mean"` (default) or `"sum"`
                over obs dims (`model_error_reconstruction_reduction`).
        """
        return self._set(model_reward_lr=lr, model_reward_train_steps=train_steps, model_error_terms=error_terms,
                         model_reward_label=label, model_reward_label_candidates=label_candidates,
                         model_error_reconstruction_reduction=reconstruction_reduction)

    def planning(self, *, mode: str = NotProvided, rollout_length_k: int = NotProvided,
                 planning_horizon_H: int = NotProvided, planning_candidates_L: int = NotProvided,
                 imagination_starts_M: int = NotProvided, selection: str = NotProvided,
                 discount: float = NotProvided, dtype: str = NotProvided, availability: str = NotProvided,
                 availability_threshold: float = NotProvided) -> "MAGConfig":
        """Imagination and random-shooting MPC (Algorithm 1 lines 6-15).

        Args:
            mode: `"mag"` plans; `"mamba"` turns planning off (one prior sample per step: the MAMBA baseline).
            rollout_length_k: imagined steps per start state (15).
            planning_horizon_H: lookahead steps scored per candidate, the candidate included (6; H <= k).
            planning_candidates_L: candidate latents per step (4).
            imagination_starts_M: start states per imagination round, of all learners together (720).
            selection: argmin `"per_start"` (the paper) or `"global"` over the batch (the released code)
                (`planning_selection`).
            discount: weight `discount**i` of the i-th lookahead error (`planning_discount`, 1.0).
            dtype: `"bfloat16"` runs the rollout actors' networks in bf16 (2-3x faster with bf16 matrix units;
                sampling and scores stay float32; needs rollout actors) (`planning_dtype`).
            availability: imagined action masks are a Bernoulli `"sample"` of the availability head (the
                released code) or `"threshold"` at `availability_threshold` (`imagined_availability`).
            availability_threshold: the threshold of `availability="threshold"` (0.5).
        """
        return self._set(mode=mode, rollout_length_k=rollout_length_k, planning_horizon_H=planning_horizon_H,
                         planning_candidates_L=planning_candidates_L, imagination_starts_M=imagination_starts_M,
                         planning_selection=selection, planning_discount=discount, planning_dtype=dtype,
                         imagined_availability=availability, availability_threshold=availability_threshold)

    def model_error_evaluation(self, *, interval: int = NotProvided, starts: int = NotProvided) -> "MAGConfig":
        """The true model error against the simulator (SMAX `smax_team` only: SC2 and PettingZoo cannot
        restore a state): from kept SMAX states, imagine k steps in the config's mode, replay the actions in SMAX,
        and log `model_error/true_step_NN`, `model_error/rm_step_NN` and `model_error/rm_spearman`.

        Args:
            interval: every this many iterations (`model_error_eval_interval`; 0, the default, is off).
            starts: kept SMAX states per measurement (`model_error_eval_starts`, 32).
        """
        return self._set(model_error_eval_interval=interval, model_error_eval_starts=starts)

    def rollout_actors(self, *, num_model_rollout_actors: int = NotProvided,
                       num_cpus_per_rollout_actor: float = NotProvided,
                       num_gpus_per_rollout_actor: float = NotProvided, synthetic_capacity: int = NotProvided,
                       checkpoint_synthetic_buffer: bool = NotProvided) -> "MAGConfig":
        """Remote model-rollout actors and D_m (Algorithm 1 line 13). D_m lives on the learners; with 0
        actors each learner imagines its share of M on its own networks (no copy, no weight round trip).

        Args:
            num_model_rollout_actors: Ray actors that imagine (1); they share the M starts.
            num_cpus_per_rollout_actor: CPUs reserved per actor (1.0).
            num_gpus_per_rollout_actor: GPUs per actor (0.0).
            synthetic_capacity: joint transitions D_m keeps; None (default) = M x k, exactly the latest round,
                which is what the released code trains PPO on; larger also replays earlier rounds.
            checkpoint_synthetic_buffer: save D_m in checkpoints (False: it is rebuilt by the next imagination).
        """
        return self._set(num_model_rollout_actors=num_model_rollout_actors,
                         num_cpus_per_rollout_actor=num_cpus_per_rollout_actor,
                         num_gpus_per_rollout_actor=num_gpus_per_rollout_actor,
                         synthetic_capacity=synthetic_capacity, checkpoint_synthetic_buffer=checkpoint_synthetic_buffer)

    def fault_tolerance(self, *, max_consecutive_sample_failures: int = NotProvided, **kwargs: Any) -> "MAGConfig":
        """RLlib's fault-tolerance settings (`restart_failed_env_runners` and others) plus MAG's own.

        Args:
            max_consecutive_sample_failures: sampling rounds in a row in which no env runner returned data
                (every env raised, or every runner was down and could not be restored) before the trial fails
                with the env's own error (3); a round with any data resets the count.
        """
        super().fault_tolerance(**kwargs)
        return self._set(max_consecutive_sample_failures=max_consecutive_sample_failures)

    def training(self, *, actor_lr: float = NotProvided, critic_lr: float = NotProvided,
                 policy_rounds: int = NotProvided, ppo_epochs: int = NotProvided,
                 ppo_minibatch_size: int = NotProvided, clip_param: float = NotProvided,
                 entropy_coeff: float = NotProvided, entropy_annealing: float = NotProvided,
                 policy_grad_clip: float = NotProvided, lambda_: float = NotProvided,
                 actor_weight_decay: float = NotProvided, normalize_advantages: bool = NotProvided,
                 episodes_per_iteration: int = NotProvided, training_ratio: float | None = NotProvided,
                 compile: bool = NotProvided, **kwargs: Any) -> "MAGConfig":
        """PPO on imagined data (Algorithm 1 lines 16-18) and the schedule; other keys go to
        `AlgorithmConfig.training` (those MAG does not read, such as `lr` or `num_epochs`, are rejected).

        Args:
            actor_lr: Adam learning rate of the actor (5e-4).
            critic_lr: Adam learning rate of the attention critic (5e-4).
            policy_rounds: rounds of (imagination + PPO) per learner update (4).
            ppo_epochs: PPO epochs per round (5).
            ppo_minibatch_size: joint samples per minibatch, of all learners together (2000).
            clip_param: PPO's ratio clip (0.2).
            entropy_coeff: entropy bonus (1e-3), multiplied by `entropy_annealing` after every minibatch.
            entropy_annealing: per-minibatch factor of the entropy bonus (0.99998).
            policy_grad_clip: global-norm clip of the actor and critic gradients (100).
            lambda_: lambda of the TD(lambda) returns (0.95; `gamma` is RLlib's, 0.99).
            actor_weight_decay: Adam weight decay of the actor (1e-5, as the released code).
            normalize_advantages: standardise advantages per batch (True).
            episodes_per_iteration: real episodes collected per training iteration (1).
            training_ratio: learner updates per real env step; None (default) = one update per collected episode,
                as the released code does.
            compile: run the imagined step under `torch.compile` (True; on CPU it needs a C++ compiler and falls
                back to eager with one warning without one; compile time is `timers/imagination_compile`).
        """
        super().training(**kwargs)
        return self._set(actor_lr=actor_lr, critic_lr=critic_lr, policy_rounds=policy_rounds, ppo_epochs=ppo_epochs,
                         ppo_minibatch_size=ppo_minibatch_size, clip_param=clip_param, entropy_coeff=entropy_coeff,
                         entropy_annealing=entropy_annealing, policy_grad_clip=policy_grad_clip, lambda_=lambda_,
                         actor_weight_decay=actor_weight_decay, normalize_advantages=normalize_advantages,
                         episodes_per_iteration=episodes_per_iteration, training_ratio=training_ratio, compile=compile)

    # ---- RLlib hooks ----------------------------------------------------------------------------
    def get_default_rl_module_spec(self) -> RLModuleSpec:
        from rllib_mag.algorithm.rl_module import MAGTorchRLModule

        return RLModuleSpec(module_class=MAGTorchRLModule)

    def get_default_learner_class(self) -> type:
        from rllib_mag.algorithm.learner import MAGTorchLearner

        return MAGTorchLearner

    @property
    def _model_config_auto_includes(self) -> dict[str, Any]:
        return {"world_model": self.world_model_settings()}

    def synthetic_buffer_capacity(self) -> int:
        """D_m's capacity in joint transitions: `synthetic_capacity`, or M x k (one imagination round)."""
        return self.synthetic_capacity or self.imagination_starts_M * self.rollout_length_k

    # ---- the torch core's settings, derived here and nowhere else ---------------------------------
    def planning_settings(self) -> PlanningConfig:
        """The planner's `PlanningConfig`: its fields are MAG keys of the same names."""
        return PlanningConfig(**self._values_of(PlanningConfig))

    def ppo_settings(self) -> PPOConfig:
        """PPO's `PPOConfig` on imagined data: its fields are MAG keys of the same names."""
        return PPOConfig(**self._values_of(PPOConfig))

    def _values_of(self, settings: type) -> dict[str, Any]:
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(settings)}

    def model_reward_label_settings(self) -> ModelRewardLabel:
        """How R_m's training pairs are built (`ModelRewardLabel`): its fields are MAG keys of the same names."""
        return ModelRewardLabel(**self._values_of(ModelRewardLabel))

    def world_model_settings(self) -> dict[str, Any]:
        """Keyword arguments of `rllib_mag.models.config.from_preset` for this config."""
        return {"name": self.world_model_preset, **self.world_model_overrides,
                **{name: getattr(self, name) for name in WORLD_MODEL_KEYS}}

    # ---- validation -----------------------------------------------------------------------------
    def validate(self) -> None:
        """Reject unknown keys and bad values before any actor starts (RLlib itself accepts typos)."""
        super().validate()
        self._validate_known_keys()
        self._reject_ignored_rllib_keys()
        self._check_values()
        if self.planning_dtype != "float32" and self.num_model_rollout_actors == 0:
            self._value_error(f"MAGConfig.planning_dtype={self.planning_dtype!r} is invalid with "
                              "num_model_rollout_actors=0: the learners imagine with their own float32 networks; "
                              "bfloat16 planning runs on rollout actors' bf16 copies (set num_model_rollout_actors "
                              ">= 1, or planning_dtype='float32')")
        if self.num_learners > 1:  # data-parallel learners split every batch into equal shards
            for name in ("batch_size_B", "imagination_starts_M", "ppo_minibatch_size"):
                if getattr(self, name) % self.num_learners:
                    self._value_error(f"MAGConfig.{name}={getattr(self, name)} is invalid with num_learners="
                                      f"{self.num_learners}: must be a multiple of num_learners (each learner "
                                      "trains on an equal shard)")
        if self.env is None:
            self._value_error("MAGConfig needs an environment: .environment('smax_team', env_config={'map_name': "
                              "'3s_vs_3z'}) (MAG plans with a world model learned from real episodes)")
        self._check_env_registered()
        shadowed = sorted(set(self.world_model_overrides) & (set(WORLD_MODEL_KEYS) | {"device"}))
        if shadowed:
            self._value_error(f"MAGConfig.world_model_overrides={self.world_model_overrides!r} is invalid: "
                              f"{shadowed} are set elsewhere (the MAGConfig keys of the same names; the device "
                              "follows num_gpus_per_learner); remove them from world_model_overrides")
        try:
            from rllib_mag.models.config import from_preset

            from_preset(**self.world_model_settings())
        except ValueError as err:
            self._value_error(f"MAGConfig.world_model_overrides={self.world_model_overrides!r} is invalid: {err}")
        if self.model_error_eval_interval > 0:
            from rllib_mag.algorithm.model_error_monitor import RESTORABLE_ENVS

            if self.env not in RESTORABLE_ENVS:
                self._value_error(f"MAGConfig.model_error_eval_interval={self.model_error_eval_interval} is invalid "
                                  f"with env {self.env!r}: the true model error replays imagined actions from kept "
                                  f"simulator states, which only {RESTORABLE_ENVS} can restore (StarCraft II and "
                                  "PettingZoo cannot); set model_error_eval_interval=0")
        if self.env in ("smac", "smac_team"):
            self._check_starcraft()

    def _check_values(self) -> None:
        """Every value by its rule (`rllib_mag.validation`); the planner's and PPO's keys by building their configs,
        which hold those rules."""
        checks = [*((check_int, name, low) for name, low in _INT_MINIMUMS.items()),
                  *((check_positive, name) for name in _POSITIVE), *((check_non_negative, name) for name in
                                                                    _NON_NEGATIVE),
                  *((check_choice, name, options) for name, options in _CHOICES.items()), (check_bool, "compile")]
        try:
            for check, name, *rule in checks:
                check(name, getattr(self, name), *rule)
            self.planning_settings()
            self.ppo_settings()
        except ValueError as err:
            self._value_error(f"MAGConfig.{err}")
        unknown_terms = set(self.model_error_terms) - set(LOSS_TERMS)
        if unknown_terms or not self.model_error_terms:
            self._value_error(f"MAGConfig.model_error_terms={self.model_error_terms!r} is invalid: a non-empty "
                              f"subset of {LOSS_TERMS}")
        if self.replay_capacity < max(self.warmup_steps, self.batch_length_T):
            self._value_error(f"MAGConfig.replay_capacity={self.replay_capacity} is invalid: must be >= warmup_steps "
                              f"({self.warmup_steps}) and batch_length_T ({self.batch_length_T})")
        if self.synthetic_capacity is not None:
            try:
                check_int("synthetic_capacity", self.synthetic_capacity, 1)
            except ValueError as err:
                self._value_error(f"MAGConfig.{err}, or None for M x k (the latest imagination round)")
        if self.training_ratio is not None:
            try:
                check_positive("training_ratio", self.training_ratio)
            except ValueError as err:
                self._value_error(f"MAGConfig.{err}, or None (one update per episode)")

    def _check_env_registered(self) -> None:
        """The env name and, for this package's envs, the env_config, on the driver (`rllib_mag.envs.check_env`):
        a typo otherwise fails inside a remote env runner."""
        from rllib_mag.envs import check_env

        try:
            check_env(self.env, self.env_config)
        except ValueError as err:
            self._value_error(str(err))

    def _check_starcraft(self) -> None:
        """Fail on the driver, before any actor starts, when SMAC, StarCraft II or the map is missing."""
        from rllib_mag.envs.smac import check_sc2_install, import_starcraft2env

        try:
            import_starcraft2env()
            check_sc2_install(self.env_config.get("map_name", "3s_vs_5z"))
        except (ImportError, FileNotFoundError) as err:
            raise ValueError(f"env {self.env!r} needs real SMAC and StarCraft II: {err}") from err

    def _reject_ignored_rllib_keys(self) -> None:
        """An inherited RLlib training key set away from its default would be silently ignored: say which MAG key
        does that job."""
        defaults = type(self)()
        for key, instead in IGNORED_RLLIB_KEYS.items():
            # `train_batch_size_per_learner` is a property derived from num_learners unless set: compare what was set
            stored = "_train_batch_size_per_learner" if key == "train_batch_size_per_learner" else key
            if getattr(self, stored) != getattr(defaults, stored):
                self._value_error(f"MAGConfig.{key}={getattr(self, key)!r} is an RLlib setting MAG does not use; "
                                  f"set {instead} instead")

    def _validate_known_keys(self) -> None:
        known = set(vars(type(self)())) | {"class"}  # `AlgorithmConfig.from_state` leaves "class" behind
        for key in vars(self):
            if key not in known and not (key.startswith("__") and key.endswith("__")):  # Tune's own keys
                match = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
                hint = f"; did you mean '{match[0]}'?" if match else ""
                self._value_error(f"unknown MAGConfig key '{key}'{hint}")
