"""Network sizes and world-model loss settings (reference: MAMBA/MAG ``configs/dreamer/DreamerAgentConfig.py``).

Two presets:

* ``paper`` -- the sizes of the released MAG/MAMBA code (hidden/embed/deter 256, 32x32 categorical latents,
  3 post-LN attention layers with 8 heads and feed-forward width 256, dropout 0.1, heads 2 x 256, R_m 4 x 256).
* ``small`` -- 64-wide networks with 8x8 latents and one 2-head attention layer; trains usefully on 2 CPU cores.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

#: Names of the world-model loss terms (``WorldModelOutput.terms`` / ``per_step`` keys).
LOSS_TERMS: tuple[str, ...] = ("kl", "reconstruction", "reward", "continue", "av_action", "mi")


@dataclass(frozen=True)
class WorldModelConfig:
    """Sizes of the world model, actor, critic and R_m plus world-model / R_m optimiser settings.

    Attributes:
        hidden: width of the encoder/decoder MLPs, the transition input layer and the attention blocks (d_model).
        embed: observation-embedding size.
        deter: GRU (deterministic state) size.
        n_categoricals, n_classes: the stochastic latent is ``n_categoricals`` one-hot vectors of ``n_classes``.
        mlp_layers: hidden layers of the observation encoder and decoder (reference: 3).
        attn_layers, attn_heads, attn_ff, dropout: the agent-mixing ``nn.TransformerEncoder`` of the transition.
        critic_attn_layers: attention layers of the centralised critic (reference: 1, no dropout).
        max_agents: size of the sinusoidal agent-index table (reference: 30).
        head_layers, head_hidden: reward / continue / av-action heads and the actor (reference: 2 x 256).
        model_reward_layers: hidden layers of the R_m network (reference: 4).
        kl_balance: weight of ``KL(sg(post) || prior)``; ``1 - kl_balance`` goes to ``KL(post || sg(prior))``.
        kl_reduction: ``"mean"`` over categoricals (released code, 1/n_categoricals of DreamerV2) or ``"sum"``.
        reconstruction_reduction: ``"sum"`` over observation dims (released code) or ``"mean"``.
        mask_dead_reconstruction: drop dead agents' reconstruction terms. Off by default: SMAC gives dead agents
            an all-zero observation, which is informative (the latent must encode death) and trivially predictable.
        loss_scales: weight of each loss term (all 1 in the released code).
        world_model_lr, model_reward_lr, model_grad_clip: Adam learning rates (MAG: 5e-4 both) and the world
            model's gradient-norm clip (the `MAGConfig` keys of the same names).
        device: where every module is built.
    """

    hidden: int = 256
    embed: int = 256
    deter: int = 256
    n_categoricals: int = 32
    n_classes: int = 32
    mlp_layers: int = 3
    attn_layers: int = 3
    attn_heads: int = 8
    attn_ff: int = 256
    dropout: float = 0.1
    critic_attn_layers: int = 1
    max_agents: int = 30
    head_layers: int = 2
    head_hidden: int = 256
    model_reward_layers: int = 4
    kl_balance: float = 0.8
    kl_reduction: str = "mean"
    reconstruction_reduction: str = "sum"
    mask_dead_reconstruction: bool = False
    loss_scales: dict[str, float] = field(default_factory=lambda: dict.fromkeys(LOSS_TERMS, 1.0))
    world_model_lr: float = 5e-4
    model_reward_lr: float = 5e-4
    model_grad_clip: float = 100.0
    device: str = "cpu"

    def __post_init__(self) -> None:
        positive = ("hidden", "embed", "deter", "n_categoricals", "n_classes", "mlp_layers", "attn_layers",
                    "attn_heads", "attn_ff", "critic_attn_layers", "max_agents", "head_layers", "head_hidden",
                    "model_reward_layers")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"WorldModelConfig.{name} must be a positive int, got {value!r}")
        if self.hidden % self.attn_heads:
            raise ValueError(f"WorldModelConfig.hidden ({self.hidden}) must be divisible by attn_heads "
                             f"({self.attn_heads})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"WorldModelConfig.dropout must be in [0, 1), got {self.dropout}")
        if not 0.0 <= self.kl_balance <= 1.0:
            raise ValueError(f"WorldModelConfig.kl_balance must be in [0, 1], got {self.kl_balance}")
        for name in ("kl_reduction", "reconstruction_reduction"):
            if getattr(self, name) not in ("mean", "sum"):
                raise ValueError(f"WorldModelConfig.{name} must be 'mean' or 'sum', got {getattr(self, name)!r}")
        unknown = set(self.loss_scales) - set(LOSS_TERMS)
        if unknown:
            raise ValueError(f"unknown loss_scales keys {sorted(unknown)}; valid: {list(LOSS_TERMS)}")
        object.__setattr__(self, "loss_scales", {**dict.fromkeys(LOSS_TERMS, 1.0), **self.loss_scales})
        for name in ("world_model_lr", "model_reward_lr", "model_grad_clip"):
            if getattr(self, name) <= 0:
                raise ValueError(f"WorldModelConfig.{name} must be > 0, got {getattr(self, name)}")

    @property
    def stoch(self) -> int:
        """Flattened size of the stochastic latent z."""
        return self.n_categoricals * self.n_classes

    @property
    def feature_dim(self) -> int:
        """Size of ``features(state) = concat(z flat, h)``."""
        return self.stoch + self.deter

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


PRESETS: dict[str, WorldModelConfig] = {
    "paper": WorldModelConfig(),
    "small": WorldModelConfig(hidden=64, embed=64, deter=64, n_categoricals=8, n_classes=8, mlp_layers=2,
                              attn_layers=1, attn_heads=2, attn_ff=64, head_hidden=64, model_reward_layers=2),
}


def from_preset(name: str, **overrides: Any) -> WorldModelConfig:
    """Return preset ``name`` (``"paper"`` or ``"small"``) with ``overrides`` applied.

    Raises:
        ValueError: on an unknown preset or override key (the message lists the valid ones) or a bad value.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown world-model preset {name!r}; valid presets: {sorted(PRESETS)}")
    valid = {f.name for f in fields(WorldModelConfig)}
    unknown = sorted(set(overrides) - valid)
    if unknown:
        raise ValueError(f"unknown WorldModelConfig keys {unknown}; valid keys: {sorted(valid)}")
    return replace(PRESETS[name], **overrides)
