"""The joint audio-video DiT (after AV-DiT and 3MDiT).

Tokens:
- video ``(B, 3, T, H, W)`` in [-1, 1] -> ``pt x ph x pw`` patches (the core's ``video_patchify``);
- audio: the log-mel image ``(B, 1, N_MELS, MEL_FRAMES)`` -> ``pm x pf`` mel patches;
- text: a closed-vocabulary caption -> a tiny learned transformer encoder.

Every layer runs factorised video attention (over space within a time step, then over time per
position), audio self-attention and, at the layers listed in ``omni_layers``, a 3MDiT omni-block:
joint attention over video, audio and text tokens together. All blocks are the core's adaLN-Zero
``DiTBlock``, modulated by one shared timestep embedding plus the pooled caption. Rotary positions
are axial (time, row, column); the time axis is in video frames for both modalities, so an audio
token and a video token of the same instant have the same time position. Audio and video share
one diffusion timestep; both are packed into one flat vector per sample (``pack``/``unpack``), so
the core's losses' algebra and samplers apply unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.modeling_utils import ModelMixin
from torch import Tensor, nn

from difforge.av.data.audio import HOP, MEL_FRAMES, N_MELS
from difforge.av.data.bounce import FPS, NUM_FRAMES, SAMPLE_RATE, SIZE
from difforge.av.data.captions import MAX_WORDS, PAD, WORDS
from difforge.core.nn.dit import DiTBlock, check_head_size, modulate
from difforge.core.nn.video import (
    axial_rotary_cos_sin,
    patch_grid_positions,
    split_head_dim,
    video_patchify,
    video_unpatchify,
)


def pack(video: Tensor, mel: Tensor) -> Tensor:
    """``(B, 3, T, H, W)`` video and ``(B, 1, M, F)`` mel -> one ``(B, N)`` vector."""
    return torch.cat([video.flatten(1), mel.flatten(1)], dim=1)


class CaptionEncoder(nn.Module):
    """Word embeddings + learned positions + a small transformer encoder over the caption."""

    def __init__(self, hidden_size: int, num_heads: int, num_layers: int, max_words: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(len(WORDS), hidden_size)
        self.position = nn.Parameter(torch.zeros(1, max_words, hidden_size))
        nn.init.normal_(self.embed.weight, std=0.02)
        layer = nn.TransformerEncoderLayer(
            hidden_size, num_heads, 2 * hidden_size, dropout=0.0, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)

    def forward(self, ids: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(tokens (B, L, D), valid mask (B, L), pooled (B, D))``."""
        valid = ids != PAD
        x = self.encoder(self.embed(ids) + self.position, src_key_padding_mask=~valid)
        weights = valid.float()[..., None]
        pooled = (x * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        return x, valid, pooled


class AVDiT(ModelMixin, ConfigMixin):
    """Joint video + audio + text DiT; see the module docstring."""

    @register_to_config
    def __init__(
        self,
        hidden_size: int = 256,
        num_heads: int = 4,
        num_layers: int = 6,
        omni_layers: list[int] | tuple[int, ...] = (1, 3, 5),
        mlp_ratio: float = 4.0,
        frames: int = NUM_FRAMES,
        size: int = SIZE,
        video_patch: list[int] | tuple[int, ...] = (2, 4, 4),
        n_mels: int = N_MELS,
        mel_frames: int = MEL_FRAMES,
        audio_patch: list[int] | tuple[int, ...] = (4, 4),
        text_layers: int = 2,
        max_words: int = MAX_WORDS,
        rope_theta: float = 100.0,
    ) -> None:
        super().__init__()
        check_head_size(hidden_size, num_heads)
        if any(not 0 <= i < num_layers for i in omni_layers):
            raise ValueError(f"omni_layers {list(omni_layers)} must be in [0, {num_layers})")
        pt, ph, pw = video_patch
        pm, pf = audio_patch
        if frames % pt or size % ph or size % pw or n_mels % pm or mel_frames % pf:
            raise ValueError("video and mel sizes must divide into their patches")
        self.video_grid = (frames // pt, size // ph, size // pw)
        self.audio_grid = (n_mels // pm, mel_frames // pf)
        self.video_numel = 3 * frames * size * size
        self.audio_numel = n_mels * mel_frames
        dim = hidden_size
        self.video_in = nn.Linear(3 * pt * ph * pw, dim)
        self.audio_in = nn.Linear(pm * pf, dim)
        self.modality = nn.Parameter(torch.zeros(3, dim))  # video, audio, text
        nn.init.normal_(self.modality, std=0.02)
        self.time_proj = Timesteps(256, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embed = TimestepEmbedding(256, dim)
        self.caption = CaptionEncoder(dim, num_heads, text_layers, max_words)
        self.caption_to_cond = nn.Linear(dim, dim)

        def blocks(n: int) -> nn.ModuleList:
            return nn.ModuleList(DiTBlock(dim, num_heads, mlp_ratio) for _ in range(n))

        self.space_blocks = blocks(num_layers)
        self.time_blocks = blocks(num_layers)
        self.audio_blocks = blocks(num_layers)
        self.omni_blocks = blocks(len(omni_layers))
        self.omni_index = {layer: i for i, layer in enumerate(omni_layers)}
        self.norm_out = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.adaLN_out = nn.Linear(dim, 4 * dim)
        self.video_out = nn.Linear(dim, 3 * pt * ph * pw)
        self.audio_out = nn.Linear(dim, pm * pf)
        for layer in (self.adaLN_out, self.video_out, self.audio_out):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        self.head_dim = dim // num_heads
        self.axis_dims = split_head_dim(self.head_dim, (2, 1, 1))
        self.register_buffer("video_pos", self._video_positions(), persistent=False)
        self.register_buffer("audio_pos", self._audio_positions(), persistent=False)

    # ---------------------------------------------------------------- layout
    def _video_positions(self) -> Tensor:
        """``(Nv, 3)``: (time in frames at the patch centre, row, column)."""
        pt = self.config.video_patch[0]
        pos = patch_grid_positions(self.video_grid)
        pos[:, 0] = pos[:, 0] * pt + (pt - 1) / 2
        return pos

    def _audio_positions(self) -> Tensor:
        """``(Na, 3)``: (time in video frames at the patch centre, mel band, 0)."""
        pf = self.config.audio_patch[1]
        grid = patch_grid_positions(self.audio_grid)  # (band, frame) pairs
        frames_per_mel = HOP / SAMPLE_RATE * FPS
        time = (grid[:, 1] * pf + (pf - 1) / 2) * frames_per_mel
        return torch.stack([time, grid[:, 0], torch.zeros_like(time)], dim=-1)

    def unpack(self, packed: Tensor) -> tuple[Tensor, Tensor]:
        c = self.config
        video = packed[:, : self.video_numel].reshape(-1, 3, c.frames, c.size, c.size)
        mel = packed[:, self.video_numel :].reshape(-1, 1, c.n_mels, c.mel_frames)
        return video, mel

    def _audio_tokens(self, mel: Tensor) -> Tensor:
        pm, pf = self.config.audio_patch
        gm, gf = self.audio_grid
        x = mel.reshape(mel.shape[0], gm, pm, gf, pf).permute(0, 1, 3, 2, 4)
        return x.reshape(mel.shape[0], gm * gf, pm * pf)

    def _audio_image(self, tokens: Tensor) -> Tensor:
        pm, pf = self.config.audio_patch
        gm, gf = self.audio_grid
        x = tokens.reshape(tokens.shape[0], gm, gf, pm, pf).permute(0, 1, 3, 2, 4)
        return x.reshape(tokens.shape[0], 1, gm * pm, gf * pf)

    def _rotary(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        return axial_rotary_cos_sin(
            positions, self.head_dim, self.axis_dims, self.config.rope_theta
        )

    # ---------------------------------------------------------------- forward
    def forward(self, sample: Tensor, timestep: Tensor, text_ids: Tensor) -> Tensor:
        """Prediction for the packed noisy ``sample`` (B, N) at ``timestep`` (B,) given the caption
        ids (B, L); packed like the input."""
        batch = sample.shape[0]
        video, mel = self.unpack(sample)
        pt, ph, pw = self.config.video_patch
        xv = self.video_in(video_patchify(video, (pt, ph, pw))) + self.modality[0]
        xa = self.audio_in(self._audio_tokens(mel)) + self.modality[1]
        text, text_valid, pooled = self.caption(text_ids)
        text = text + self.modality[2]
        t = timestep.to(sample.device).reshape(-1).expand(batch)
        temb = self.time_embed(self.time_proj(t).to(sample.dtype)) + self.caption_to_cond(pooled)
        temb = temb[:, None]

        gt, gh, gw = self.video_grid
        space = gh * gw
        video_rot = self._rotary(self.video_pos[None])
        audio_rot = self._rotary(self.audio_pos[None])
        text_pos = torch.zeros(1, text.shape[1], 3, device=sample.device)
        joint_rot = self._rotary(
            torch.cat([self.video_pos[None], self.audio_pos[None], text_pos], dim=1)
        )
        # Rotary tables for the factorised layouts: per time step (space), per position (time).
        space_rot = tuple(r[:, :, :space] for r in video_rot)
        time_rot = tuple(r[:, :, ::space] for r in video_rot)
        n_video, n_audio = xv.shape[1], xa.shape[1]
        joint_mask = torch.cat([text_valid.new_ones(batch, n_video + n_audio), text_valid], dim=1)[
            :, None, None
        ]
        temb_space = temb.repeat_interleave(gt, dim=0)
        temb_time = temb.repeat_interleave(space, dim=0)

        for layer in range(self.config.num_layers):
            x = xv.reshape(batch * gt, space, -1)
            x = self.space_blocks[layer](x, temb_space, rotary=space_rot)
            x = x.reshape(batch, gt, space, -1).transpose(1, 2).reshape(batch * space, gt, -1)
            x = self.time_blocks[layer](x, temb_time, rotary=time_rot)
            xv = x.reshape(batch, space, gt, -1).transpose(1, 2).reshape(batch, n_video, -1)
            xa = self.audio_blocks[layer](xa, temb, rotary=audio_rot)
            if layer in self.omni_index:
                joint = torch.cat([xv, xa, text], dim=1)
                joint = self.omni_blocks[self.omni_index[layer]](
                    joint, temb, attention_mask=joint_mask, rotary=joint_rot
                )
                xv, xa, text = joint.split([n_video, n_audio, text.shape[1]], dim=1)

        shift_v, scale_v, shift_a, scale_a = self.adaLN_out(F.silu(temb)).chunk(4, dim=-1)
        out_v = self.video_out(modulate(self.norm_out(xv), shift_v, scale_v))
        out_a = self.audio_out(modulate(self.norm_out(xa), shift_a, scale_a))
        video_pred = video_unpatchify(out_v, (pt, ph, pw), self.video_grid, 3)
        return pack(video_pred, self._audio_image(out_a))
