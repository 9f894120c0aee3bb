"""MAG's model-error predictor R_m and the random-shooting planner used in imagination."""

from rllib_mag.planning.imagination import PlanningConfig, SyntheticBatch, imagine
from rllib_mag.planning.model_reward import (LABEL_MODES, PAPER_TERMS, REFERENCE_TERMS, ModelRewardLabel,
                                             ModelRewardPredictor, candidate_errors, label_pass,
                                             model_error_labels, model_reward_loss, model_reward_pairs)

__all__ = ["LABEL_MODES", "PAPER_TERMS", "REFERENCE_TERMS", "ModelRewardLabel", "ModelRewardPredictor",
           "PlanningConfig", "SyntheticBatch", "candidate_errors", "imagine", "label_pass", "model_error_labels",
           "model_reward_loss", "model_reward_pairs"]
