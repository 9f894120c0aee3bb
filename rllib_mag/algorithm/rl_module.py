"""`MAGTorchRLModule`: MAG's networks as one RLlib module, and the acting policy of the env runners.

Acting (Algorithm 1 line 3; reference `DreamerController.step`): the RSSM posterior filters the team observation
with the previous joint action (attention across agents is the communication channel), then each agent's actor
samples from its own latent features, with the env's action mask. The recurrent state (z, h, previous action)
is the module's RLlib state, so RLlib's connectors carry it across steps and reset it for new episodes (the
all-zero initial state is the RSSM's reset state).

The learner's copy also holds the attention critic and R_m; the env runners' copy (`inference_only`) does not.
Training does not go through `forward_train`: `MAGTorchLearner` runs Algorithm 1's phases on these networks.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.torch import TorchRLModule

from rllib_mag.algorithm.catalog import MAGCatalog
from rllib_mag.models.world_model import RSSMState


class MAGTorchRLModule(TorchRLModule):
    """World model + actor (+ critic and R_m on the learner) for one team env."""

    def setup(self) -> None:
        catalog = MAGCatalog(self.observation_space, self.model_config["world_model"])
        self.spaces = catalog.spaces
        self.world_model = catalog.build_world_model()
        self.actor = catalog.build_actor()
        if not self.inference_only:
            self.critic = catalog.build_critic()
            self.model_reward = catalog.build_model_reward()

    def get_non_inference_attributes(self) -> list[str]:
        return ["critic", "model_reward"]

    def get_initial_state(self) -> dict[str, torch.Tensor]:
        state = self.world_model.initial_state((self.spaces.n_agents,))
        return {"stoch": state.stoch, "deter": state.deter,
                "prev_action": torch.zeros(self.spaces.n_agents, self.spaces.n_actions)}

    def _act(self, batch: dict[str, Any], greedy: bool) -> dict[str, Any]:
        """One posterior step and one action per agent; inputs carry a time axis of length 1."""
        obs, state_in = batch[Columns.OBS], batch[Columns.STATE_IN]
        team_obs, action_mask = obs["obs"][:, 0], obs["action_mask"][:, 0]
        prev = RSSMState(state_in["stoch"], state_in["deter"])
        no_reset = torch.zeros(team_obs.shape[0], device=team_obs.device)
        posterior = self.world_model.observe_step(prev, state_in["prev_action"], team_obs, no_reset)
        policy = self.actor(posterior.features(), action_mask)
        actions = policy.probs.argmax(-1) if greedy else policy.sample()
        return {
            Columns.ACTIONS: actions[:, None],
            Columns.ACTION_LOGP: policy.log_prob(actions).sum(-1)[:, None],
            Columns.STATE_OUT: {"stoch": posterior.stoch, "deter": posterior.deter,
                                "prev_action": F.one_hot(actions, self.spaces.n_actions).float()},
        }

    def _forward_inference(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return self._act(batch, greedy=True)

    def _forward_exploration(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return self._act(batch, greedy=False)

    def _forward_train(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        raise NotImplementedError("MAG trains through MAGTorchLearner's phase methods "
                                  "(train_world_model, train_model_reward, train_policy), not forward_train")
