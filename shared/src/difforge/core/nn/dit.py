"""DiT backbone: a diffusion transformer over 1-D token sequences, shared by every domain.

One model class serves continuous diffusion (float tokens in, a prediction out, conditioned on the
timestep) and masked/block discrete diffusion (token ids in, logits out, optional block-causal masks
and an exact KV cache). Each domain patchifies its data into a sequence outside the model.

Conditioning:
- adaLN-Zero modulation by the sum of timestep, vector-condition and class embeddings; each may be
  per sequence ``(B, D)`` or per token ``(B, L, D)`` (block diffusion gives every block its own
  noise level);
- condition tokens by sequence concatenation (``prefix_embeds``) and by cross-attention
  (``encoder_hidden_states``).

Built to the diffusers cache-hook contract (ModelMixin + ConfigMixin + CacheMixin, blocks in
``transformer_blocks`` with ``hidden_states`` first, diffusers ``Attention`` modules named ``attn``
and ``cross_attn`` (TaylorSeer matches names ending in ``attn``), the block class registered,
``proj_out`` last), so FirstBlockCache, TaylorSeer, PyramidAttentionBroadcast and MagCache apply
without changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.hooks._helpers import TransformerBlockMetadata, TransformerBlockRegistry
from diffusers.models.attention import FeedForward
from diffusers.models.attention_processor import Attention
from diffusers.models.cache_utils import CacheMixin
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput
from torch import Tensor, nn

from difforge.core.config import check_config

# Named size presets (DiT/nanoGPT style). Keys are constructor arguments.
DIT_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"hidden_size": 64, "num_layers": 2, "num_heads": 2},
    "small": {"hidden_size": 256, "num_layers": 6, "num_heads": 4},
    "base": {"hidden_size": 384, "num_layers": 12, "num_heads": 6},
    "large": {"hidden_size": 768, "num_layers": 12, "num_heads": 12},
}


################################################################################
#                                  KV cache                                    #
################################################################################


@dataclass
class KVCache:
    """Keys and values of already-processed tokens, one ``(B, heads, T, head_dim)`` pair per layer."""

    keys: list[Tensor]
    values: list[Tensor]

    @property
    def length(self) -> int:
        return self.keys[0].shape[2] if self.keys else 0

    @property
    def batch_size(self) -> int:
        return self.keys[0].shape[0] if self.keys else 0

    def select(self, batch_index: Tensor) -> KVCache:
        """Keep (or reorder/repeat) batch rows, e.g. to drop finished sequences or expand beams."""
        return KVCache([k[batch_index] for k in self.keys], [v[batch_index] for v in self.values])


@dataclass
class _LayerKV:
    """Per-layer slot passed into the attention processor: holds the past and receives the new K/V."""

    past_key: Tensor | None = None
    past_value: Tensor | None = None
    key: Tensor | None = field(default=None, repr=False)
    value: Tensor | None = field(default=None, repr=False)

    def extend(self, key: Tensor, value: Tensor) -> tuple[Tensor, Tensor]:
        if self.past_key is not None:
            key = torch.cat([self.past_key, key], dim=2)
            value = torch.cat([self.past_value, value], dim=2)
        self.key, self.value = key, value
        return key, value


@dataclass
class DiTOutput(BaseOutput):
    sample: Tensor
    past_key_values: KVCache | None = None


################################################################################
#                           Rotary position embedding                          #
################################################################################
# Written here rather than taken from diffusers: diffusers' helpers take one position vector for
# the whole batch, while block diffusion needs per-row positions (B, L) (x_t ⊕ x_0 repeats them).


def check_head_size(hidden_size: int, num_heads: int, key: str = "hidden_size") -> None:
    """For configs that build a :class:`DiTBackbone`: whole, even per-head widths (rotary
    embeddings rotate pairs), as a one-line config error naming ``key``."""
    check_config(
        num_heads > 0 and hidden_size % num_heads == 0 and (hidden_size // num_heads) % 2 == 0,
        key,
        f"an even multiple of num_heads={num_heads} per head",
        hidden_size,
    )


def rotary_cos_sin(
    position_ids: Tensor, head_dim: int, theta: float = 10000.0
) -> tuple[Tensor, Tensor]:
    """cos/sin tables of shape ``(B, 1, L, head_dim)`` for positions ``(B, L)``."""
    inv_freq = 1.0 / theta ** (
        torch.arange(0, head_dim, 2, device=position_ids.device, dtype=torch.float32) / head_dim
    )
    angles = position_ids.float()[..., None] * inv_freq  # (B, L, head_dim/2)
    angles = torch.cat([angles, angles], dim=-1)[:, None]
    return angles.cos(), angles.sin()


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return (x.float() * cos + rotated.float() * sin).to(x.dtype)


################################################################################
#                                  Attention                                   #
################################################################################


class DiTAttnProcessor:
    """SDPA attention with rotary positions, boolean masks and an optional KV-cache slot.

    Plugged into diffusers ``Attention`` so that the diffusers cache hooks recognise the module.
    """

    def __call__(
        self,
        attn: Attention,
        hidden_states: Tensor,
        encoder_hidden_states: Tensor | None = None,
        attention_mask: Tensor | None = None,
        rotary: tuple[Tensor, Tensor] | None = None,
        kv_slot: _LayerKV | None = None,
    ) -> Tensor:
        batch, length, _ = hidden_states.shape
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        q = attn.to_q(hidden_states)
        k = attn.to_k(context)
        v = attn.to_v(context)
        head_dim = q.shape[-1] // attn.heads
        q, k, v = (t.unflatten(-1, (attn.heads, head_dim)).transpose(1, 2) for t in (q, k, v))
        if attn.norm_q is not None:
            q, k = attn.norm_q(q), attn.norm_k(k)
        if rotary is not None:
            q, k = apply_rotary(q, *rotary), apply_rotary(k, *rotary)
        if kv_slot is not None:
            k, v = kv_slot.extend(k, v)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attention_mask)
        out = out.transpose(1, 2).reshape(batch, length, -1)
        return attn.to_out[1](attn.to_out[0](out))


################################################################################
#                                 DiT block                                    #
################################################################################


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    return x * (1 + scale) + shift


class DiTBlock(nn.Module):
    """Pre-norm transformer block with adaLN-Zero: self-attention, optional cross-attention, MLP."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float,
        cross_attention_dim: int | None = None,
        qk_norm: str | None = "rms_norm",
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(
            query_dim=dim,
            heads=num_heads,
            dim_head=dim // num_heads,
            bias=True,
            qk_norm=qk_norm,
            processor=DiTAttnProcessor(),
        )
        self.cross_attn = None
        if cross_attention_dim is not None:
            self.norm2 = nn.LayerNorm(dim, eps=1e-6)
            self.cross_attn = Attention(
                query_dim=dim,
                cross_attention_dim=cross_attention_dim,
                heads=num_heads,
                dim_head=dim // num_heads,
                bias=True,
                qk_norm=qk_norm,
                processor=DiTAttnProcessor(),
            )
        self.norm3 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.ff = FeedForward(dim, mult=mlp_ratio, activation_fn="gelu-approximate")
        self.adaLN_modulation = nn.Linear(dim, 6 * dim)
        # adaLN-Zero: every block starts as the identity.
        nn.init.zeros_(self.adaLN_modulation.weight)
        nn.init.zeros_(self.adaLN_modulation.bias)

    def forward(
        self,
        hidden_states: Tensor,
        temb: Tensor,
        encoder_hidden_states: Tensor | None = None,
        attention_mask: Tensor | None = None,
        rotary: tuple[Tensor, Tensor] | None = None,
        kv_slot: _LayerKV | None = None,
    ) -> Tensor:
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.adaLN_modulation(
            F.silu(temb)
        ).chunk(6, dim=-1)
        attn_in = modulate(self.norm1(hidden_states), shift_msa, scale_msa)
        hidden_states = hidden_states + gate_msa * self.attn(
            attn_in, attention_mask=attention_mask, rotary=rotary, kv_slot=kv_slot
        )
        if self.cross_attn is not None and encoder_hidden_states is not None:
            hidden_states = hidden_states + self.cross_attn(
                self.norm2(hidden_states), encoder_hidden_states=encoder_hidden_states
            )
        mlp_in = modulate(self.norm3(hidden_states), shift_mlp, scale_mlp)
        return hidden_states + gate_mlp * self.ff(mlp_in)


def register_block_for_cache_hooks() -> None:
    """Tell diffusers' (private) block registry, which the cache hooks read, that a
    :class:`DiTBlock` returns hidden_states only.

    Called when a cache is enabled, not at import: the registry's first use imports every diffusers
    transformer family (and scipy.stats), a second of start-up that sampling without a cache
    does not need.
    """
    TransformerBlockRegistry.register(
        DiTBlock,
        TransformerBlockMetadata(
            return_hidden_states_index=None, return_encoder_hidden_states_index=None
        ),
    )


################################################################################
#                                   Backbone                                   #
################################################################################


class DiTBackbone(ModelMixin, ConfigMixin, CacheMixin):
    """Diffusion transformer over token sequences; see the module docstring.

    Give ``vocab_size`` for discrete tokens (``(B, L)`` ids in, logits out) or ``in_channels`` for
    continuous tokens (``(B, L, C)`` floats in, a ``(B, L, out_channels)`` prediction out).
    ``external_embedding=True`` (discrete only) builds no token table: every call passes
    ``embedding_weight`` (e.g. token embeddings computed from a graph), which the tied output head
    uses too.
    """

    _supports_gradient_checkpointing = False

    def enable_cache(self, config: Any) -> None:
        """diffusers' ``CacheMixin.enable_cache``, after registering our block for its hooks."""
        register_block_for_cache_hooks()
        super().enable_cache(config)

    @register_to_config
    def __init__(
        self,
        vocab_size: int | None = None,
        in_channels: int | None = None,
        out_channels: int | None = None,
        hidden_size: int = 256,
        num_layers: int = 6,
        num_heads: int = 4,
        mlp_ratio: float = 4.0,
        max_seq_len: int = 1024,
        pos_embedding: str = "rope",
        use_timestep: bool = True,
        cond_dim: int | None = None,
        num_classes: int | None = None,
        cross_attention_dim: int | None = None,
        tie_embeddings: bool = True,
        qk_norm: str | None = "rms_norm",
        rope_theta: float = 10000.0,
        external_embedding: bool = False,
    ) -> None:
        super().__init__()
        if (vocab_size is None) == (in_channels is None):
            raise ValueError(
                "give exactly one of vocab_size (discrete) or in_channels (continuous)"
            )
        if pos_embedding not in ("rope", "learned"):
            raise ValueError(f"pos_embedding must be 'rope' or 'learned', got {pos_embedding!r}")
        check_head_size(hidden_size, num_heads)
        self.head_dim = hidden_size // num_heads

        if external_embedding and vocab_size is None:
            raise ValueError("external_embedding needs vocab_size (a discrete model)")
        if external_embedding:
            # The caller passes the token table in every call (e.g. embeddings computed from a
            # graph); an own vocab x width table would be weights nothing reads.
            self.token_embed = None
            out_channels = out_channels or vocab_size
        elif vocab_size is not None:
            self.token_embed = nn.Embedding(vocab_size, hidden_size)
            nn.init.normal_(self.token_embed.weight, std=0.02)
            out_channels = out_channels or vocab_size
        else:
            self.token_embed = nn.Linear(in_channels, hidden_size)
            out_channels = out_channels or in_channels
        self.out_channels = out_channels
        self.pos_embed = (
            nn.Embedding(max_seq_len, hidden_size) if pos_embedding == "learned" else None
        )
        if self.pos_embed is not None:
            nn.init.normal_(self.pos_embed.weight, std=0.02)

        if use_timestep:
            self.time_proj = Timesteps(256, flip_sin_to_cos=True, downscale_freq_shift=0)
            self.time_embed = TimestepEmbedding(256, hidden_size)
        self.cond_embed = (
            nn.Sequential(
                nn.Linear(cond_dim, hidden_size), nn.SiLU(), nn.Linear(hidden_size, hidden_size)
            )
            if cond_dim is not None
            else None
        )
        # One extra row: the null class used for classifier-free guidance.
        self.class_embed = nn.Embedding(num_classes + 1, hidden_size) if num_classes else None

        self.transformer_blocks = nn.ModuleList(
            DiTBlock(hidden_size, num_heads, mlp_ratio, cross_attention_dim, qk_norm)
            for _ in range(num_layers)
        )
        self.norm_out = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.adaLN_out = nn.Linear(hidden_size, 2 * hidden_size)
        nn.init.zeros_(self.adaLN_out.weight)
        nn.init.zeros_(self.adaLN_out.bias)
        self.tied_head = vocab_size is not None and tie_embeddings and out_channels == vocab_size
        if self.tied_head:
            self.proj_out = nn.Identity()
            self.logit_bias = nn.Parameter(torch.zeros(vocab_size))
        else:
            self.proj_out = nn.Linear(hidden_size, out_channels)
            if vocab_size is None:  # continuous prediction starts at zero, as in DiT
                nn.init.zeros_(self.proj_out.weight)
                nn.init.zeros_(self.proj_out.bias)

    @classmethod
    def from_preset(cls, name: str, **kwargs: Any) -> DiTBackbone:
        if name not in DIT_PRESETS:
            raise ValueError(f"unknown DiT preset {name!r}; choose from {sorted(DIT_PRESETS)}")
        return cls(**{**DIT_PRESETS[name], **kwargs})

    @property
    def null_class(self) -> int:
        """The class label meaning "no condition" (classifier-free guidance)."""
        return self.config.num_classes

    def _conditioning(
        self,
        batch: int,
        timestep: Tensor | None,
        cond: Tensor | None,
        class_labels: Tensor | None,
        ref: Tensor,
    ) -> Tensor:
        """Sum of the condition embeddings, shaped ``(B, 1, D)`` or ``(B, L, D)`` for adaLN."""
        parts: list[Tensor] = []
        if timestep is not None and self.config.use_timestep:
            t = timestep.to(ref.device)
            if t.ndim == 0:
                t = t.expand(batch)
            flat = self.time_proj(t.reshape(-1)).to(ref.dtype)
            emb = self.time_embed(flat).reshape(*t.shape, -1)
            parts.append(emb[:, None] if t.ndim == 1 else emb)
        if cond is not None and self.cond_embed is not None:
            emb = self.cond_embed(cond.to(ref.dtype))
            parts.append(emb[:, None] if emb.ndim == 2 else emb)
        if class_labels is not None and self.class_embed is not None:
            parts.append(self.class_embed(class_labels)[:, None])
        if not parts:
            return ref.new_zeros(batch, 1, self.config.hidden_size)
        total = parts[0]
        for part in parts[1:]:
            total = total + part
        return total

    def forward(
        self,
        hidden_states: Tensor,
        timestep: Tensor | None = None,
        *,
        cond: Tensor | None = None,
        class_labels: Tensor | None = None,
        encoder_hidden_states: Tensor | None = None,
        prefix_embeds: Tensor | None = None,
        attention_mask: Tensor | None = None,
        position_ids: Tensor | None = None,
        past_key_values: KVCache | None = None,
        use_cache: bool = False,
        embedding_weight: Tensor | None = None,
    ) -> DiTOutput:
        """Run the backbone.

        ``attention_mask`` (bool, True = may attend) covers the main tokens only: shape
        ``(L, past + L)``, ``(B, L, past + L)`` or ``(B, 1, L, past + L)``; prefix tokens given in
        this call are always visible and see only the past and themselves. ``position_ids`` cover
        the main tokens (default ``past + P + arange(L)``); prefix tokens take ``past + arange(P)``.
        """
        if self.config.vocab_size is not None:
            weight = self._token_table(embedding_weight)
            x = F.embedding(hidden_states, weight)
        else:
            x = self.token_embed(hidden_states)
        batch, length = x.shape[:2]
        past = past_key_values.length if past_key_values is not None else 0
        n_prefix = prefix_embeds.shape[1] if prefix_embeds is not None else 0

        if position_ids is None:
            position_ids = torch.arange(past + n_prefix, past + n_prefix + length, device=x.device)
        position_ids = position_ids.to(x.device).expand(batch, length)
        if n_prefix:
            prefix_pos = torch.arange(past, past + n_prefix, device=x.device).expand(
                batch, n_prefix
            )
            position_ids = torch.cat([prefix_pos, position_ids], dim=1)
            x = torch.cat([prefix_embeds.to(x.dtype), x], dim=1)
        if self.pos_embed is not None:
            x = x + self.pos_embed(position_ids)
            rotary = None
        else:
            rotary = rotary_cos_sin(position_ids, self.head_dim, self.config.rope_theta)

        temb = self._conditioning(batch, timestep, cond, class_labels, x)
        if n_prefix and temb.shape[1] > 1:  # per-token conditioning: prefix tokens get none
            temb = torch.cat([temb.new_zeros(batch, n_prefix, temb.shape[-1]), temb], dim=1)
        mask = self._full_mask(attention_mask, batch, length, past, n_prefix, x.device)

        slots = [
            _LayerKV(past_key_values.keys[i], past_key_values.values[i])
            if past_key_values is not None
            else _LayerKV()
            for i in range(len(self.transformer_blocks))
        ]
        for block, slot in zip(self.transformer_blocks, slots):
            x = block(x, temb, encoder_hidden_states, mask, rotary, slot)

        x = x[:, n_prefix:]
        temb_out = temb[:, n_prefix:] if temb.shape[1] > 1 else temb
        shift, scale = self.adaLN_out(F.silu(temb_out)).chunk(2, dim=-1)
        x = modulate(self.norm_out(x), shift, scale)
        if self.tied_head:
            out = F.linear(x, self._token_table(embedding_weight).to(x.dtype)) + self.logit_bias
        else:
            out = self.proj_out(x)
        cache = KVCache([s.key for s in slots], [s.value for s in slots]) if use_cache else None
        return DiTOutput(sample=out, past_key_values=cache)

    def _token_table(self, embedding_weight: Tensor | None) -> Tensor:
        """The token table of this call: the one passed in, else the backbone's own."""
        if embedding_weight is not None:
            return embedding_weight
        if self.token_embed is None:
            raise ValueError(
                "this DiTBackbone was built with external_embedding=True: pass embedding_weight"
            )
        return self.token_embed.weight

    @staticmethod
    def _full_mask(
        mask: Tensor | None, batch: int, length: int, past: int, n_prefix: int, device: torch.device
    ) -> Tensor | None:
        """Expand the caller's main-token mask to ``(B|1, 1, P + L, past + P + L)``."""
        if mask is None:
            if not n_prefix:
                return None
            # Prefix tokens must not see the main tokens, so their cached K/V stay valid later.
            mask = torch.ones(length, past + length, dtype=torch.bool, device=device)
        mask = mask.to(device=device, dtype=torch.bool)
        if mask.ndim == 2:
            mask = mask[None, None]
        elif mask.ndim == 3:
            mask = mask[:, None]
        if mask.shape[-2:] != (length, past + length):
            raise ValueError(
                f"attention_mask must end in ({length}, {past + length}), got {tuple(mask.shape[-2:])}"
            )
        if not n_prefix:
            return mask
        rows = mask.shape[0]
        full = torch.zeros(
            rows, 1, n_prefix + length, past + n_prefix + length, dtype=torch.bool, device=device
        )
        full[..., :n_prefix, : past + n_prefix] = True
        full[..., n_prefix:, :past] = mask[..., :past]
        full[..., n_prefix:, past : past + n_prefix] = True
        full[..., n_prefix:, past + n_prefix :] = mask[..., past:]
        return full
