"""Pure-PyTorch MAMBA world model, actor and critic (no Ray imports)."""

from rllib_mag.models.actor_critic import Actor, AttentionCritic
from rllib_mag.models.config import LOSS_TERMS, PRESETS, WorldModelConfig, from_preset
from rllib_mag.models.world_model import FilterOutput, RSSMState, WorldModel, WorldModelOutput

__all__ = ["Actor", "AttentionCritic", "FilterOutput", "LOSS_TERMS", "PRESETS", "RSSMState", "WorldModel",
           "WorldModelConfig", "WorldModelOutput", "from_preset"]
