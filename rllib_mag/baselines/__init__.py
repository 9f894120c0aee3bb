"""Model-free baselines built from RLlib's own algorithms."""

from rllib_mag.baselines.masked_ppo import MaskedPPO, MaskedPPOConfig, MaskedPPOTorchRLModule

__all__ = ["MaskedPPO", "MaskedPPOConfig", "MaskedPPOTorchRLModule"]
