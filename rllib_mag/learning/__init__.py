"""Policy learning (PPO, TD(lambda)) and the world-model / R_m training steps."""

from rllib_mag.learning.ppo import PPOConfig, make_optimizers, ppo_update
from rllib_mag.learning.returns import lambda_returns
from rllib_mag.learning.world_model_trainer import WorldModelTrainer

__all__ = ["PPOConfig", "WorldModelTrainer", "lambda_returns", "make_optimizers", "ppo_update"]
