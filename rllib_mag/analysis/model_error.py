"""Ground-truth multi-step model error of imagined rollouts, measured against the simulator (SMAX).

The paper (Figure 3) could only approximate the accumulated model error with R_m, the same network that chose the
states. SMAX is a pure-function simulator whose state can be kept and stepped again, so here the error is measured:

1. play real episodes with the acting policy (posterior filter + actor, the env's masks; Algorithm 1 line 3) and
   keep, at random steps, the simulator state and the posterior state ``s_t`` (``collect_starts``);
2. from every kept state imagine k steps with the current world model and actor, in MAG mode (planner on) and in
   MAMBA mode (planner off), same weights, same starts, same generator seed (``imagine_predictions``);
3. replay each imagined joint action sequence in the simulator from the kept state (``replay``) and score every
   imagined ``s_{t+1}`` against the simulator's ``o_{t+1}`` and ``r_{t+1}`` (``true_errors``): Huber error of
   the decoded observation (mean over obs dims, as R_m's reconstruction label) plus Huber error of each agent's
   reward prediction, averaged over the agents alive in the simulator;
4. R_m's ranking quality (``rank_correlations``): at the first imagined step, L' candidate latents share
   ``h_{t+1}``; the Spearman correlation between R_m's scores and the candidates' true errors, per start.

Conventions: a start stops counting once its replayed episode has ended (the step that ends it counts, unless no
agent is left alive to observe); an imagined action the mask forbids (attacking an enemy out of range: imagined
masks are samples of the av head) goes to SMAX as it is, which lets it have no effect on the dynamics (counted in
``invalid_action_rate``). Per-step means are over the starts still counting; the accumulated error at step t is
the sum of the per-step means up to t; 95% intervals are percentile bootstraps over start states, paired across
modes for the MAMBA - MAG difference. ``oracle_selection`` bounds what the planner's choice can buy: it picks
candidates by their true one-step error.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field, replace
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import ConstantInputWarning, pearsonr, rankdata
from torch import Tensor

from rllib_mag.envs.base import RestorableBackend
from rllib_mag.envs.team import TeamView
from rllib_mag.models.actor_critic import Actor
from rllib_mag.models.layers import sample_categorical, softmax_weights
from rllib_mag.models.world_model import RSSMState, WorldModel
from rllib_mag.planning.imagination import ActionNoise, PlanningConfig, act, imagination_steps, planning_mode
from rllib_mag.planning.model_reward import ModelRewardPredictor

#: Imagination modes compared: MAG (planner on) and MAMBA (the same networks, planner off).
MODES = ("mag", "mamba")
#: Also accepted by ``evaluate_model_error``: the planner with the true one-step error in place of R_m (a bound).
ORACLE = "oracle"


@dataclass(frozen=True)
class ModelErrorConfig:
    """Settings of one ground-truth evaluation.

    Attributes:
        num_starts: M kept simulator states (imagination start states).
        keep_probability: chance that a real step is kept as a start (spreads starts over episodes).
        rank_candidates: candidate latents per start for R_m's rank correlation.
        bootstrap_samples: resamples of the start states for the 95% intervals.
        seed: seeds the episodes, the choice of starts, imagination and the bootstrap.
    """

    num_starts: int = 128
    keep_probability: float = 0.2
    rank_candidates: int = 16
    bootstrap_samples: int = 2000
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("num_starts", "rank_candidates", "bootstrap_samples"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < (2 if name == "rank_candidates" else 1):
                raise ValueError(f"ModelErrorConfig.{name} must be an int >= {2 if name == 'rank_candidates' else 1}"
                                 f", got {value!r}")
        if not 0.0 < self.keep_probability <= 1.0:
            raise ValueError(f"ModelErrorConfig.keep_probability must be in (0, 1], got {self.keep_probability}")


class Networks(NamedTuple):
    """The networks imagination needs (as the rollout actors hold them)."""

    world_model: WorldModel
    actor: Actor
    model_reward: ModelRewardPredictor


@dataclass
class StartStates:
    """M kept real steps: the simulator's snapshots and the posterior states ``s_t`` ``[M, N, ...]``."""

    snapshots: list[Any]
    posterior: RSSMState


@dataclass
class Prediction:
    """An imagined rollout, ``[M, k, ...]``: joint actions ``a_t``; for ``s_{t+1}`` the decoded observations
    ``[M, k, N, D]``, per-agent reward predictions ``[M, k, N]`` and R_m's mean over agents ``[M, k]``."""

    actions: np.ndarray
    obs: np.ndarray
    reward: np.ndarray
    rm_error: np.ndarray


@dataclass
class Replay:
    """The simulator's answer to a Prediction's actions, ``[M, k, ...]``: ``o_{t+1}`` (zero rows for dead agents, as
    the team view), the team reward ``r_{t+1}``, who is alive, whether the start still counts at step t, and which
    imagined actions the mask forbade."""

    obs: np.ndarray
    reward: np.ndarray
    alive: np.ndarray
    active: np.ndarray
    invalid: np.ndarray


def _require_restorable(view: TeamView) -> None:
    if not isinstance(view.backend, RestorableBackend):
        raise ValueError(f"ground-truth model error needs a simulator whose state can be kept and restored (SMAX: env "
                         f"'smax_team'); the {type(view.backend).__name__} backend cannot restore a state")


def _device(world_model: WorldModel) -> torch.device:
    return next(world_model.parameters()).device


def collect_starts(view: TeamView, networks: Networks, num_starts: int, keep_probability: float,
                   seed: int) -> StartStates:
    """Play episodes with the acting policy and keep ``num_starts`` (simulator snapshot, posterior) pairs."""
    _require_restorable(view)
    world_model, actor = networks.world_model, networks.actor
    device, n_agents = _device(world_model), view.n_agents
    rng, action_generator = np.random.default_rng(seed), torch.Generator().manual_seed(seed)
    latent_generator = torch.Generator(device=device).manual_seed(seed)
    snapshots: list[Any] = []
    kept: list[RSSMState] = []
    episode = 0
    with planning_mode(world_model, actor):
        while len(snapshots) < num_starts:
            obs = view.reset(seed=seed + episode)
            episode += 1
            state = world_model.initial_state((n_agents,))
            prev_action = torch.zeros(n_agents, world_model.n_actions, device=device)
            running = True
            while running and len(snapshots) < num_starts:
                state = world_model.observe_step(state, prev_action, torch.as_tensor(obs["obs"], device=device),
                                                 torch.zeros((), device=device), latent_generator)
                if rng.random() < keep_probability:
                    snapshots.append(view.backend.snapshot())
                    kept.append(state)
                logits = actor.masked_logits(state.features(), torch.as_tensor(obs["action_mask"], device=device))
                action = sample_categorical(softmax_weights(logits).cpu(), action_generator)
                obs, _, terminated, truncated, _ = view.step(action.numpy())
                prev_action = F.one_hot(action, world_model.n_actions).float().to(device)
                running = not (terminated or truncated)
    return StartStates(snapshots, RSSMState.stack(kept))


def imagine_predictions(networks: Networks, starts: StartStates, planning: PlanningConfig, seed: int) -> Prediction:
    """k imagined steps from every start (Algorithm 1 lines 8-14), decoded into observations and rewards."""
    world_model, model_reward = networks.world_model, networks.model_reward
    generator = torch.Generator(device=_device(world_model)).manual_seed(seed)
    actions, obs, reward, rm_error = [], [], [], []
    with planning_mode(*networks):
        for step in imagination_steps(world_model, networks.actor, model_reward, starts.posterior, planning,
                                      generator):
            features = step.plan.next_state.features()
            actions.append(step.action)
            obs.append(world_model.decoder(features)[0])
            reward.append(world_model.reward(features))
            rm_error.append(model_reward(features).mean(-1))
    return Prediction(torch.stack(actions, 1).cpu().numpy(),
                      *(torch.stack(x, 1).float().cpu().numpy() for x in (obs, reward, rm_error)))


def _simulate(view: TeamView, actions: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, np.ndarray]:
    """One simulator step from its current state with imagined actions ``[N]``, forbidden ones included; returns
    the team observation, reward, whether the episode ended, and which actions the mask forbade."""
    mask = np.asarray(view.backend.get_avail_actions())
    forbidden = np.take_along_axis(mask, actions[:, None], -1)[:, 0] == 0
    obs, reward, terminated, truncated, _ = view.step(actions, check_mask=False)
    return obs, reward, terminated or truncated, forbidden


def _empty_replay(n_starts: int, k: int, view: TeamView) -> Replay:
    n_agents = view.n_agents
    return Replay(np.zeros((n_starts, k, n_agents, view.obs_dim), np.float32), np.zeros((n_starts, k), np.float32),
                  np.zeros((n_starts, k, n_agents), np.float32), np.zeros((n_starts, k), bool),
                  np.zeros((n_starts, k, n_agents), bool))


def _record(truth: Replay, m: int, t: int, obs: dict[str, np.ndarray], reward: float, forbidden: np.ndarray) -> None:
    truth.obs[m, t], truth.alive[m, t], truth.reward[m, t], truth.invalid[m, t] = obs["obs"], obs["alive"], reward, \
        forbidden
    truth.active[m, t] = obs["alive"].any()


def replay(view: TeamView, starts: StartStates, actions: np.ndarray) -> Replay:
    """Step the simulator from every kept snapshot with the imagined joint actions ``[M, k, N]``."""
    _require_restorable(view)
    truth = _empty_replay(*actions.shape[:2], view)
    for m, snapshot in enumerate(starts.snapshots):
        view.backend.restore(snapshot)
        for t in range(actions.shape[1]):
            obs, reward, done, forbidden = _simulate(view, actions[m, t])
            _record(truth, m, t, obs, reward, forbidden)
            if done:
                break
    return truth


def _errors(obs: np.ndarray, reward: np.ndarray, truth: Replay) -> dict[str, np.ndarray]:
    """``true_errors`` of predicted ``obs [..., M, k, N, D]`` and per-agent ``reward [..., M, k, N]`` (leading
    dims, e.g. candidates, broadcast against ``truth``)."""
    obs, reward = torch.as_tensor(obs), torch.as_tensor(reward)
    target_obs = torch.as_tensor(truth.obs).expand(obs.shape)
    target_reward = torch.as_tensor(truth.reward)[..., None].expand(reward.shape)
    weights = torch.as_tensor(truth.alive * truth.active[..., None])
    per_agent = {"obs": F.huber_loss(obs, target_obs, reduction="none").mean(-1),
                 "reward": F.huber_loss(reward, target_reward, reduction="none")}
    errors = {name: ((value * weights).sum(-1) / weights.sum(-1).clamp_min(1.0)).numpy()
              for name, value in per_agent.items()}
    errors["total"] = errors["obs"] + errors["reward"]
    return errors


def true_errors(prediction: Prediction, truth: Replay) -> dict[str, np.ndarray]:
    """Per start and step ``[M, k]``: ``obs`` (Huber over obs dims, mean), ``reward`` (Huber per agent) and their
    sum ``total``, each averaged over the agents alive in the simulator; zero where the start no longer counts."""
    return _errors(prediction.obs, prediction.reward, truth)


def _candidates(world_model: WorldModel, state: RSSMState, action: Tensor, num_candidates: int,
                generator: torch.Generator) -> tuple[RSSMState, Tensor, Tensor, Tensor]:
    """``num_candidates`` prior latents at ``h_{t+1} = transition(state, action)``: their states
    ``[L, M, N, ...]``, features, decoded observations and per-agent reward predictions."""
    deter = world_model.transition(state, F.one_hot(action, world_model.n_actions).to(state.deter.dtype))
    logits = world_model.prior_logits(deter)
    stoch = world_model.sample_latent(logits.expand(num_candidates, *logits.shape), generator)
    candidates = RSSMState(stoch, deter.expand(num_candidates, *deter.shape))
    features = candidates.features()
    return candidates, features, world_model.decoder(features)[0], world_model.reward(features)


def _numpy(x: Tensor) -> np.ndarray:
    return x.float().cpu().numpy()


def rank_correlations(networks: Networks, starts: StartStates, prediction: Prediction, truth: Replay,
                      num_candidates: int, seed: int) -> dict[str, np.ndarray]:
    """Spearman correlations ``[M]`` (NaN where undefined) between R_m's scores of ``num_candidates`` latents drawn
    from the prior at the first imagined ``h_{t+1}`` and those candidates' true errors against the simulator: the
    ``total`` error and its ``obs`` and ``reward`` parts."""
    device = _device(networks.world_model)
    generator = torch.Generator(device=device).manual_seed(seed)
    with planning_mode(*networks):
        _, features, decoded, rewards = _candidates(networks.world_model, starts.posterior,
                                                    torch.as_tensor(prediction.actions[:, 0], device=device),
                                                    num_candidates, generator)
        scores = _numpy(networks.model_reward(features).mean(-1)).T  # [M, L']
    first = Replay(truth.obs[:, :1], truth.reward[:, :1], truth.alive[:, :1], truth.active[:, :1], truth.invalid[:, :1])
    errors = _errors(_numpy(decoded)[:, :, None], _numpy(rewards)[:, :, None], first)  # each [L', M, 1]
    return {name: _row_spearman(scores, errors[name][..., 0].T, first.active[:, 0])
            for name in ("total", "obs", "reward")}


def oracle_selection(view: TeamView, networks: Networks, starts: StartStates, planning: PlanningConfig,
                     seed: int) -> tuple[Prediction, Replay]:
    """Imagination whose planner keeps, among ``planning_candidates_L`` latents, the one with the lowest *true*
    one-step error: the simulator is stepped in lockstep with the same actions, so all candidates face the same
    ``o_{t+1}``. No R_m can choose better one step ahead; this bounds what the planner's selection can buy."""
    _require_restorable(view)
    world_model, n_starts, k = networks.world_model, len(starts.snapshots), planning.rollout_length_k
    device = _device(world_model)
    generator = torch.Generator(device=device).manual_seed(seed)
    snapshots, running = list(starts.snapshots), np.ones(n_starts, bool)
    truth = _empty_replay(n_starts, k, view)
    actions, obs, reward = [], [], []
    state = starts.posterior
    with planning_mode(*networks):
        for t in range(k):
            features = state.features()
            noise = ActionNoise.draw(features.shape[:-1], world_model.n_actions, generator, device)
            action = act(world_model, networks.actor, features, planning, noise)[0]
            for m in np.flatnonzero(running):
                view.backend.restore(snapshots[m])
                step_obs, step_reward, done, forbidden = _simulate(view, _numpy(action[m]).astype(np.int64))
                _record(truth, m, t, step_obs, step_reward, forbidden)
                snapshots[m], running[m] = view.backend.snapshot(), not done
            candidates, _, decoded, rewards = _candidates(world_model, state, action, planning.planning_candidates_L,
                                                          generator)
            now = Replay(*(x[:, t:t + 1] for x in (truth.obs, truth.reward, truth.alive, truth.active, truth.invalid)))
            errors = _errors(_numpy(decoded)[:, :, None], _numpy(rewards)[:, :, None], now)["total"][..., 0]
            choice = torch.as_tensor(errors.argmin(0), device=device)
            index = torch.arange(n_starts, device=device)
            state = candidates.map(lambda x: x[choice, index])
            actions.append(action)
            obs.append(decoded[choice, index])
            reward.append(rewards[choice, index])
    prediction = Prediction(_numpy(torch.stack(actions, 1)).astype(np.int64),
                            *(_numpy(torch.stack(x, 1)) for x in (obs, reward)), np.zeros((n_starts, k), np.float32))
    return prediction, truth


def _row_spearman(x: np.ndarray, y: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Spearman correlation of each row of ``x`` and ``y`` ``[M, L]``; NaN for invalid or constant rows."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConstantInputWarning)  # constant rows: NaN, as documented
        rho = pearsonr(rankdata(x, axis=1), rankdata(y, axis=1), axis=1).statistic
    return np.where(valid, rho, np.nan)


def accumulated(errors: np.ndarray, active: np.ndarray, index: np.ndarray | None = None) -> np.ndarray:
    """Accumulated error by step ``[..., k]``: the cumulative sum of per-step means over the counting starts.
    ``index [S, M]`` evaluates ``S`` resamples of the starts at once."""
    if index is not None:
        errors, active = errors[index], active[index]
    step_mean = (errors * active).sum(-2) / np.maximum(active.sum(-2), 1)
    return step_mean.cumsum(-1)


def _interval(samples: np.ndarray) -> list[list[float]]:
    return np.percentile(samples, [2.5, 97.5], axis=0).T.tolist()


#: The accumulated errors reported: the true error (``total`` = ``obs`` + ``reward``) and R_m's estimate (``rm``).
PARTS = ("total", "obs", "reward", "rm")


@dataclass
class ModeResult:
    """One imagination mode's accumulated errors by step for each of ``PARTS`` (means and 95% CIs, k values)."""

    accumulated: dict[str, list[float]]
    accumulated_ci: dict[str, list[list[float]]]
    counting_fraction: list[float]
    invalid_action_rate: float


@dataclass
class ModelErrorReport:
    """Result of ``evaluate_model_error``: per mode, the paired MAMBA - MAG differences for each of ``PARTS`` (when
    both ran; > 0: MAG lower) and R_m's rank correlation with the true candidate errors (mean over starts, 95% CI,
    number of defined starts; and the means for the observation and reward parts of the error alone)."""

    modes: dict[str, ModeResult]
    difference: dict[str, list[float]] = field(default_factory=dict)
    difference_ci: dict[str, list[list[float]]] = field(default_factory=dict)
    rm_spearman: float = float("nan")
    rm_spearman_ci: list[float] = field(default_factory=list)
    rm_spearman_starts: int = 0
    rm_spearman_obs: float = float("nan")
    rm_spearman_reward: float = float("nan")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def metrics(self, mode: str) -> dict[str, float]:
        """Flat training metrics: ``true_step_NN`` (accumulated true error at step NN), ``rm_step_NN`` (R_m's
        version) and ``rm_spearman``."""
        result = self.modes[mode]
        out = {f"true_step_{t:02d}": v for t, v in enumerate(result.accumulated["total"], start=1)}
        out.update({f"rm_step_{t:02d}": v for t, v in enumerate(result.accumulated["rm"], start=1)})
        out.update(rm_spearman=self.rm_spearman, invalid_action_rate=result.invalid_action_rate)
        return out


def evaluate_model_error(view: TeamView, networks: Networks, planning: PlanningConfig,
                         cfg: ModelErrorConfig = ModelErrorConfig(), modes: tuple[str, ...] = MODES,
                         starts: StartStates | None = None) -> ModelErrorReport:
    """True and R_m-predicted accumulated model error of imagination in each of ``modes`` from the same starts
    (collected with ``cfg``, or ``starts``), the paired MAMBA - MAG difference, and R_m's rank correlation (in the
    first mode's first step). ``"oracle"`` adds ``oracle_selection`` (its ``rm`` part is 0)."""
    unknown = [m for m in modes if m not in (*MODES, ORACLE)]
    if unknown or not modes:
        raise ValueError(f"modes must be a non-empty subset of {(*MODES, ORACLE)}, got {modes}")
    if starts is None:
        starts = collect_starts(view, networks, cfg.num_starts, cfg.keep_probability, cfg.seed)
    index = np.random.default_rng(cfg.seed).integers(0, len(starts.snapshots),
                                                     (cfg.bootstrap_samples, len(starts.snapshots)))
    results, resampled, predictions, truths = {}, {}, {}, {}
    for mode in modes:
        if mode == ORACLE:
            prediction, truth = oracle_selection(view, networks, starts, planning, cfg.seed)
        else:
            mode_planning = replace(planning, mode="mag" if mode == "mag" else "mamba")
            prediction = imagine_predictions(networks, starts, mode_planning, cfg.seed)
            truth = replay(view, starts, prediction.actions)
        errors = {**true_errors(prediction, truth), "rm": prediction.rm_error}
        resampled[mode] = {part: accumulated(errors[part], truth.active, index) for part in PARTS}
        predictions[mode], truths[mode] = prediction, truth
        alive_steps = truth.alive.astype(bool) & truth.active[..., None]
        results[mode] = ModeResult(
            accumulated={part: accumulated(errors[part], truth.active).tolist() for part in PARTS},
            accumulated_ci={part: _interval(resampled[mode][part]) for part in PARTS},
            counting_fraction=truth.active.mean(0).tolist(),
            invalid_action_rate=float(truth.invalid[alive_steps].mean()) if alive_steps.any() else 0.0)
    report = ModelErrorReport(results)
    if set(MODES) <= set(modes):
        for part in PARTS:
            report.difference[part] = np.subtract(results["mamba"].accumulated[part],
                                                  results["mag"].accumulated[part]).tolist()
            report.difference_ci[part] = _interval(resampled["mamba"][part] - resampled["mag"][part])
    first = modes[0]
    rho = rank_correlations(networks, starts, predictions[first], truths[first], cfg.rank_candidates, cfg.seed)
    report.rm_spearman_obs, report.rm_spearman_reward = (_nanmean(rho[name]) for name in ("obs", "reward"))
    defined = np.flatnonzero(~np.isnan(rho["total"]))
    if defined.size:
        report.rm_spearman = float(rho["total"][defined].mean())
        resampled = rho["total"][defined][np.random.default_rng(cfg.seed).integers(
            0, defined.size, (cfg.bootstrap_samples, defined.size))]
        report.rm_spearman_ci = np.percentile(resampled.mean(1), [2.5, 97.5]).tolist()
        report.rm_spearman_starts = int(defined.size)
    return report


def _nanmean(values: np.ndarray) -> float:
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
