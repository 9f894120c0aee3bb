"""MAG's model-error predictor R_m and the random-shooting planner used in imagination."""

from rllib_mag.planning.imagination import PlanningConfig, SyntheticBatch, imagine
from rllib_mag.planning.model_reward import (PAPER_TERMS, REFERENCE_TERMS, ModelRewardPredictor, model_error_labels,
                                             model_reward_loss)

__all__ = ["PAPER_TERMS", "REFERENCE_TERMS", "ModelRewardPredictor", "PlanningConfig", "SyntheticBatch", "imagine",
           "model_error_labels", "model_reward_loss"]
