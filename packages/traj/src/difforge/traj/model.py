"""TrajDLM: block discrete diffusion over road-segment tokens, with a road-network encoder.

One model family, three parts (all in :class:`TrajDLM`, saved as one folder):

1. **Road-network encoder** (:class:`RoadNetworkEncoder`, after HOSER's road encoder, which
   TrajDLM's "road only" ablation keeps): node features = segment-id embedding, linear(standardised
   log length), road-type embedding, linear(standardised centroid lon), linear(standardised
   centroid lat), concatenated and passed through a 2-layer GATv2 (torch_geometric ``GAT(v2=True)``)
   over HOSER's road adjacency (segments sharing an end node; edge features |heading difference|/π
   and reachability), then projected to the backbone width. Its output is the token-embedding
   table of the segments; two learned rows are appended for ``[EOS]`` and ``[MASK]``. The same
   table is the output head (tied: ``logits = h · Eᵀ + b``), passed to the core's
   :class:`~difforge.core.nn.dit.DiTBackbone` as ``embedding_weight``. ``road_encoder=False`` swaps
   the encoder for a plain embedding table (the paper's "no encoder" ablation).
2. **Backbone**: the core DiT run as BD3-LM block diffusion (no timestep input, as dLLM/LLaDA).
   The trip condition — origin segment, destination segment and departure-time bucket
   (``time_buckets`` equal slices of the UTC day) — enters twice: as three prefix tokens
   (``prefix_embeds``: attention can read them) and as one adaLN vector (``cond``: their
   concatenation). Classifier-free guidance drops all three together to learned null values.
3. **Travel times** (beyond TrajDLM, which models no time): :class:`TravelTimeHead`, a small MLP
   predicting a Gaussian over ``log1p(seconds)`` spent on each segment from the (detached) token
   embeddings of the segment and the next one (the turn), the departure time of day (sin/cos),
   and whether it is the trip's first segment (trips start part-way along it). Generated trips get
   entry times = departure + cumulative sampled durations, like HOSER's time gaps.

Token ids: segments ``0..N-1``, ``[EOS]`` = N (pads a trip to a multiple of the block size),
``[MASK]`` = N + 1. Every trip starts with its origin segment at position 0 (a known token).

Saved as a folder through the core's model-folder helpers (:mod:`difforge.core.pretrained`):
``config.json`` (``model_type``, the :class:`SamplingConfig` defaults, ``format_version``, this
module's :class:`TrajDLMConfig`, the road network's sha256 and the dataset and training summary),
``model.safetensors``, and a copy of ``roadmap.geo`` / ``roadmap.rel`` (the encoder's graph;
weights are only valid with that exact network).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from difforge.core import pretrained
from difforge.core.config import check_config, from_dict, to_dict
from difforge.core.errors import CheckpointError, ConfigError, UserError
from difforge.core.io import atomic_path
from difforge.core.nn.dit import DiTBackbone, DiTOutput, check_head_size
from difforge.core.pretrained import (
    CONFIG_NAME,
    read_json_object,
    read_model_meta,
    split_model_meta,
    write_model_meta,
)
from difforge.traj.data.datasets import available_datasets, dataset_dir
from difforge.traj.data.hoser import ROADMAP_FILES, read_roadmap
from difforge.traj.data.segments import SegmentGraph

NUM_PREFIX = 3  # origin, destination, departure-time bucket
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "weights" / "default"
WEIGHTS_NAME = "model.safetensors"
MINUTES_PER_DAY = 1440
MODEL_TYPE = "difforge-traj"
# config.json layout: 2 = the core's model-folder metadata (model_type difforge-traj and this
# version); folders without a version were written as model_type "trajdlm" and load unchanged.
FORMAT_VERSION = 2
LEGACY_MODEL_TYPE = "trajdlm"


@dataclass(frozen=True)
class TrajDLMConfig:
    """Architecture of :class:`TrajDLM` (the ``model`` group of a training config).

    ``num_segments``, ``num_road_types``, ``block_size`` and ``max_len`` are 0 = "from the data"
    until :func:`resolve_config` fills them in; ``block_size`` and ``max_len`` may be set by hand.
    """

    num_segments: int = 0
    num_road_types: int = 0
    block_size: int = 0  # 0: from the trip-length distribution (resolve_config)
    max_len: int = 0  # tokens per trip incl. the origin; 0: longest training trip, rounded up
    hidden_size: int = 128
    num_layers: int = 6
    num_heads: int = 4
    mlp_ratio: float = 4.0
    road_encoder: bool = True  # False: plain embedding table (the "no encoder" ablation)
    id_dim: int = 64
    feature_dim: int = 16
    gnn_dim: int = 128
    gnn_layers: int = 2
    time_buckets: int = 24
    duration_hidden: int = 64

    def __post_init__(self) -> None:
        for key in ("num_segments", "num_road_types", "block_size", "max_len"):
            check_config(getattr(self, key) >= 0, key, ">= 0", getattr(self, key))
        for key in (
            "hidden_size",
            "num_layers",
            "num_heads",
            "id_dim",
            "feature_dim",
            "gnn_dim",
            "gnn_layers",
            "time_buckets",
            "duration_hidden",
        ):
            check_config(getattr(self, key) >= 1, key, ">= 1", getattr(self, key))
        check_head_size(self.hidden_size, self.num_heads)
        check_config(self.mlp_ratio > 0, "mlp_ratio", "> 0", self.mlp_ratio)

    @property
    def eos_id(self) -> int:
        return self.num_segments

    @property
    def mask_id(self) -> int:
        return self.num_segments + 1

    @property
    def vocab_size(self) -> int:
        return self.num_segments + 2

    @property
    def resolved(self) -> bool:
        return min(self.num_segments, self.num_road_types, self.block_size, self.max_len) > 0


@dataclass(frozen=True)
class SamplingConfig:
    """How trips are decoded (defaults: TrajDLM's inference settings); saved in the model folder,
    run by :class:`difforge.traj.sample.TrajectorySampler`."""

    decoding: Literal["diffusion", "autoregressive"] = "diffusion"
    # Denoising steps per block (block / steps tokens committed per step); None: threshold only.
    # 2 rather than TrajDLM's up to 8: fewer steps decode faster, and more scored no better on our
    # data (RESULTS.md, "Notes moved out of the source").
    steps_per_block: int | None = 2
    threshold: float | None = None  # Fast-dLLM: also commit every token above this confidence
    guidance_scale: float = 0.5  # w in u + (w + 1)(c - u); 0 disables guidance
    temperature: float = 0.0  # 0: greedy (TrajDLM); > 0: Gumbel-max sampling
    constrained: bool = True  # topology-constrained sampling (False: the ablation)
    # Longest detour, in segments beyond the fewest-hop route, a trip may take (rule 2); training
    # stores a high quantile of the training trips' detours here. None: only the canvas limits it.
    max_detour: int | None = None
    duration_sampling: bool = True  # sample travel times from the head's Gaussian (False: mean)
    batch_size: int = 256
    cuda_graphs: bool = True  # replay the constraint as CUDA graphs on a GPU

    def __post_init__(self) -> None:
        if self.steps_per_block is not None:
            check_config(self.steps_per_block >= 1, "steps_per_block", ">= 1", self.steps_per_block)
        if self.threshold is not None:
            check_config(0 < self.threshold <= 1, "threshold", "in (0, 1]", self.threshold)
        check_config(
            0 <= self.guidance_scale < math.inf, "guidance_scale", ">= 0", self.guidance_scale
        )
        check_config(0 <= self.temperature < math.inf, "temperature", ">= 0", self.temperature)
        check_config(self.batch_size >= 1, "batch_size", ">= 1", self.batch_size)
        if self.max_detour is not None:
            check_config(self.max_detour >= 0, "max_detour", ">= 0", self.max_detour)


def default_block_size(lengths: np.ndarray) -> int:
    """The block size rule: the smallest power of two >= the 90th percentile of trip length + 1.

    TrajDLM matches the block length to the trip-length distribution (32 for Beijing's short taxi
    trips, 64 for Porto and San Francisco). Covering 90 % of trips (plus the end token) with one
    block lets most trips finish in a single block — the fewest sequential denoising calls — while
    the block stays no longer than needed (each denoising step processes the whole block). Clamped
    to [4, 128]. Helsinki (median 15, p90 24 segments) gets 32.
    """
    if len(lengths) == 0:
        raise UserError("cannot choose a block size: no training trips")
    target = float(np.percentile(lengths, 90)) + 1
    return int(min(128, max(4, 2 ** math.ceil(math.log2(target)))))


def time_bucket(departure_minute: Tensor, buckets: int) -> Tensor:
    """Bucket of the UTC minute of day; a negative minute (unknown time) gives the null bucket."""
    bucket = departure_minute * buckets // MINUTES_PER_DAY
    return torch.where(departure_minute < 0, buckets, bucket)


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def resolve_config(
    config: TrajDLMConfig, graph: SegmentGraph, lengths: np.ndarray
) -> TrajDLMConfig:
    """Fill the data-dependent fields of ``config`` from the road network and the trip lengths.

    ``max_len`` (0) becomes the longest trip rounded up to a multiple of the block size. Explicit
    ``num_segments``/``num_road_types`` must match the network.
    """
    num_types = len(graph.road_type_names)
    for key, value in (("num_segments", graph.num_segments), ("num_road_types", num_types)):
        given = getattr(config, key)
        if given and given != value:
            raise ConfigError(f"config key 'model.{key}' is {given} but the data has {value}")
    block = config.block_size or default_block_size(lengths)
    max_len = config.max_len or round_up(int(np.max(lengths)), block)
    return dataclasses.replace(
        config,
        num_segments=graph.num_segments,
        num_road_types=num_types,
        block_size=block,
        max_len=max_len,
    )


################################################################################
#                               Graph features                                 #
################################################################################


def graph_features(graph: SegmentGraph) -> dict[str, Tensor]:
    """Encoder inputs of ``graph``: standardised node features and HOSER's adjacency."""
    log_length = np.log(np.maximum(graph.length_m, 0.1))
    centroid = graph.centroid
    edge_index, edge_attr = graph.road_adjacency()
    return {
        "length": torch.from_numpy(_standardise(log_length)).float().unsqueeze(-1),
        "road_type": torch.from_numpy(graph.road_type.copy()),
        "lon": torch.from_numpy(_standardise(centroid[:, 0])).float().unsqueeze(-1),
        "lat": torch.from_numpy(_standardise(centroid[:, 1])).float().unsqueeze(-1),
        "edge_index": torch.from_numpy(edge_index.copy()),
        "edge_attr": torch.from_numpy(edge_attr.copy()),
    }


def _standardise(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / max(float(x.std()), 1e-9)


def roadmap_fingerprint(data_dir: str | Path) -> str:
    """SHA-256 of ``roadmap.geo`` + ``roadmap.rel``: a model is valid only on that exact network."""
    digest = hashlib.sha256()
    for name in ROADMAP_FILES:
        path = Path(data_dir) / name
        if not path.is_file():
            raise UserError(f"{path}: no such file")
        digest.update(path.read_bytes())
    return digest.hexdigest()


################################################################################
#                                  Modules                                     #
################################################################################


class RoadNetworkEncoder(nn.Module):
    """Segment embeddings from a 2-layer GATv2 over the road adjacency (module docstring)."""

    def __init__(self, config: TrajDLMConfig) -> None:
        super().__init__()
        from torch_geometric.nn.models import GAT

        f = config.feature_dim
        self.id_embed = nn.Embedding(config.num_segments, config.id_dim)
        self.length_proj = nn.Linear(1, f)
        self.type_embed = nn.Embedding(config.num_road_types, f)
        self.lon_proj = nn.Linear(1, f)
        self.lat_proj = nn.Linear(1, f)
        self.gnn = GAT(
            in_channels=config.id_dim + 4 * f,
            hidden_channels=config.gnn_dim,
            num_layers=config.gnn_layers,
            out_channels=config.gnn_dim,
            v2=True,
            edge_dim=2,
        )
        self.proj = nn.Linear(config.gnn_dim, config.hidden_size)

    def forward(self, features: dict[str, Tensor]) -> Tensor:
        nodes = torch.cat(
            [
                self.id_embed.weight,
                self.length_proj(features["length"]),
                self.type_embed(features["road_type"]),
                self.lon_proj(features["lon"]),
                self.lat_proj(features["lat"]),
            ],
            dim=-1,
        )
        hidden = self.gnn(nodes, features["edge_index"], edge_attr=features["edge_attr"])
        return self.proj(hidden)


class TravelTimeHead(nn.Module):
    """Gaussian over ``log1p(seconds)`` on each segment (module docstring, part 3)."""

    def __init__(self, config: TrajDLMConfig) -> None:
        super().__init__()
        h = config.duration_hidden
        self.net = nn.Sequential(
            nn.Linear(2 * config.hidden_size + 4, h),
            nn.SiLU(),
            nn.Linear(h, h),
            nn.SiLU(),
            nn.Linear(h, 2),
        )

    def forward(
        self, table: Tensor, tokens: Tensor, eos_id: int, departure_minute: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Mean and log-std of ``log1p(seconds)`` for every position of ``tokens`` ``(B, L)``."""
        table = table.detach()  # travel times must not pull the token embeddings around
        following = torch.cat([tokens[:, 1:], tokens.new_full((len(tokens), 1), eos_id)], 1)
        angle = 2 * math.pi * departure_minute.float() / MINUTES_PER_DAY
        clock = torch.stack([angle.sin(), angle.cos()], -1)[:, None].expand(*tokens.shape, 2)
        first = torch.zeros(*tokens.shape, 1, device=tokens.device)
        first[:, 0] = 1.0
        position = torch.log1p(torch.arange(tokens.shape[1], device=tokens.device).float())
        position = position[None, :, None].expand(*tokens.shape, 1)
        features = torch.cat(
            [table[tokens], table[following], clock.to(table.dtype), first, position], -1
        )
        mean, log_std = self.net(features).unbind(-1)
        return mean, log_std.clamp(-5.0, 3.0)


class TrajDLM(nn.Module):
    """Road encoder + conditioned DiT block-diffusion backbone + travel-time head.

    Call conventions:

    - training (through :class:`difforge.core.diffusion.BlockDiffusionLoss`):
      ``model(tokens, origin=..., destination=..., time_bucket=..., attention_mask=...,
      position_ids=...)`` returns logits ``(B, L, vocab)``; ``position_ids`` count main tokens from
      0 (the three prefix tokens are prepended here);
    - travel times: ``model(tokens, task="duration", departure_minute=...)`` returns the mean and
      log-std of ``log1p(seconds)`` stacked in ``.sample`` ``(B, L, 2)``;
    - sampling uses the parts directly: :meth:`token_table` once, :meth:`condition` for the
      conditional and the null prompt, and ``model.backbone`` as the denoiser.

    The road network is attached with :meth:`attach_graph` (non-persistent buffers): saved weights
    never carry it, the model folder keeps a copy of the roadmap files instead.
    """

    def __init__(self, config: TrajDLMConfig) -> None:
        super().__init__()
        if not config.resolved:
            raise ConfigError(
                "TrajDLMConfig has unresolved fields (num_segments, num_road_types, block_size, "
                "max_len must be > 0): call resolve_config first"
            )
        self.config = config
        d = config.hidden_size
        self.encoder = RoadNetworkEncoder(config) if config.road_encoder else None
        self.plain_embed = None if config.road_encoder else nn.Embedding(config.num_segments, d)
        if self.plain_embed is not None:
            nn.init.normal_(self.plain_embed.weight, std=0.02)
        self.special_embed = nn.Parameter(torch.randn(2, d) * 0.02)  # [EOS], [MASK]
        self.null_segment = nn.Parameter(torch.randn(d) * 0.02)  # CFG: "no origin/destination"
        self.role_embed = nn.Parameter(torch.randn(2, d) * 0.02)  # origin, destination
        self.time_embed = nn.Embedding(config.time_buckets + 1, d)  # last row: no time
        self.backbone = DiTBackbone(
            vocab_size=config.vocab_size,
            hidden_size=d,
            num_layers=config.num_layers,
            num_heads=config.num_heads,
            mlp_ratio=config.mlp_ratio,
            max_seq_len=NUM_PREFIX + config.max_len,
            use_timestep=False,
            cond_dim=NUM_PREFIX * d,
            # Token embeddings come from the road encoder (or plain_embed): every call passes
            # them as embedding_weight, and the tied output head reads the same table.
            external_embedding=True,
        )
        self.duration_head = TravelTimeHead(config)
        self.road_graph: SegmentGraph | None = None
        # Saved with the weights: how to sample, and what the model was trained on.
        self.sampling = SamplingConfig()
        self.meta: dict[str, Any] = {}  # format_version, roadmap_sha256, dataset, training
        self.model_dir: Path | None = None  # the folder it was loaded from

    # ------------------------------------------------------------------ graph

    def attach_graph(self, graph: SegmentGraph) -> TrajDLM:
        """Attach the road network the model was built for (buffers follow ``.to(device)``)."""
        if graph.num_segments != self.config.num_segments:
            raise CheckpointError(
                f"the model has {self.config.num_segments} segment tokens, the network "
                f"{graph.num_segments} segments"
            )
        if len(graph.road_type_names) != self.config.num_road_types:
            raise CheckpointError(
                f"the model knows {self.config.num_road_types} road types, the network has "
                f"{len(graph.road_type_names)}"
            )
        device = self.special_embed.device
        for name, value in graph_features(graph).items():
            self.register_buffer(f"graph_{name}", value.to(device), persistent=False)
        self.road_graph = graph
        return self

    def _graph_features(self) -> dict[str, Tensor]:
        names = ("length", "road_type", "lon", "lat", "edge_index", "edge_attr")
        try:
            return {name: getattr(self, f"graph_{name}") for name in names}
        except AttributeError:
            raise RuntimeError("no road network attached: call attach_graph(graph)") from None

    # ------------------------------------------------------------------ parts

    def token_table(self) -> Tensor:
        """Embedding (and tied output) table ``(N + 2, D)``: segments, ``[EOS]``, ``[MASK]``."""
        if self.encoder is not None:
            segments = self.encoder(self._graph_features())
        else:
            segments = self.plain_embed.weight
        return torch.cat([segments, self.special_embed.to(segments.dtype)], dim=0)

    def condition(
        self, table: Tensor, origin: Tensor, destination: Tensor, time_bucket: Tensor
    ) -> dict[str, Tensor]:
        """``prefix_embeds`` ``(B, 3, D)`` and ``cond`` ``(B, 3D)`` for the backbone.

        ``origin``/``destination`` equal to ``num_segments`` and ``time_bucket`` equal to
        ``time_buckets`` mean "unknown" (the classifier-free guidance null condition).
        """
        segments = torch.cat([table[: self.config.num_segments], self.null_segment[None]], 0)
        prefix = torch.stack(
            [
                segments[origin] + self.role_embed[0],
                segments[destination] + self.role_embed[1],
                self.time_embed(time_bucket).to(segments.dtype),
            ],
            dim=1,
        )
        return {"prefix_embeds": prefix, "cond": prefix.flatten(1)}

    def null_condition(self, table: Tensor, batch: int) -> dict[str, Tensor]:
        """The unconditional prompt for ``batch`` rows."""
        device = table.device
        null_segment = torch.full((batch,), self.config.num_segments, device=device)
        null_time = torch.full((batch,), self.config.time_buckets, device=device)
        return self.condition(table, null_segment, null_segment, null_time)

    def time_bucket(self, departure_minute: Tensor) -> Tensor:
        return time_bucket(departure_minute, self.config.time_buckets)

    # ------------------------------------------------------------------ forward

    def forward(
        self,
        tokens: Tensor,
        *,
        origin: Tensor | None = None,
        destination: Tensor | None = None,
        time_bucket: Tensor | None = None,
        departure_minute: Tensor | None = None,
        attention_mask: Tensor | None = None,
        position_ids: Tensor | None = None,
        task: str = "denoise",
    ) -> DiTOutput:
        table = self.token_table()
        if task == "duration":
            mean, log_std = self.duration_head(table, tokens, self.config.eos_id, departure_minute)
            return DiTOutput(sample=torch.stack([mean, log_std], -1))
        if task != "denoise":
            raise ValueError(f"unknown task {task!r}")
        condition = self.condition(table, origin, destination, time_bucket)
        if position_ids is None:
            position_ids = torch.arange(tokens.shape[1], device=tokens.device)
        return self.backbone(
            tokens,
            attention_mask=attention_mask,
            position_ids=position_ids + NUM_PREFIX,
            embedding_weight=table,
            **condition,
        )

    # ------------------------------------------------------------------ save / load

    def save_pretrained(
        self, out_dir: str | Path, *, data_dir: str | Path, info: dict[str, Any] | None = None
    ) -> Path:
        """Write ``model.safetensors``, the roadmap copy and ``config.json`` (last) to ``out_dir``.

        ``config.json`` holds the architecture, :attr:`sampling`, the format version, the road
        network's fingerprint and ``info`` (dataset, training summary).
        """
        from safetensors.torch import save_file

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().float().cpu().contiguous() for k, v in self.state_dict().items()}
        with atomic_path(out / WEIGHTS_NAME) as tmp:
            save_file(state, str(tmp))
        data_dir = Path(data_dir)
        if data_dir.resolve() != out.resolve():
            for name in ROADMAP_FILES:
                with atomic_path(out / name) as tmp:
                    shutil.copyfile(data_dir / name, tmp)
        fields = {
            "format_version": FORMAT_VERSION,
            "model": to_dict(self.config),
            "roadmap_sha256": roadmap_fingerprint(out),
            **(info or {}),
        }
        write_model_meta(out, MODEL_TYPE, self.sampling, fields)
        return out

    @classmethod
    def from_pretrained(cls, model_dir: str | Path) -> TrajDLM:
        """Load a model folder (``"default"``: the shipped one) in eval mode, with its road network
        attached as ``road_graph``, its sampling defaults as :attr:`sampling` and the rest of its
        ``config.json`` as :attr:`meta`."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        model_dir = resolve_model_dir(model_dir)
        sampling, meta = split_model_meta(read_traj_meta(model_dir), SamplingConfig)
        config = from_dict(TrajDLMConfig, meta.get("model", {}), prefix="model.")
        if roadmap_fingerprint(model_dir) != meta.get("roadmap_sha256"):
            raise CheckpointError(
                f"{model_dir}: roadmap files differ from the ones it was saved with"
            )
        graph = read_roadmap(model_dir, name=meta.get("dataset", {}).get("name"))
        model = cls(config)
        try:
            state = load_file(str(model_dir / WEIGHTS_NAME))
            model.load_state_dict(state)
        except (OSError, RuntimeError, SafetensorError) as exc:
            raise CheckpointError(f"{model_dir}: cannot load {WEIGHTS_NAME} ({exc})") from None
        model.attach_graph(graph)
        model.sampling, model.meta, model.model_dir = sampling, meta, model_dir
        return model.eval()


def read_traj_meta(model_dir: Path) -> dict[str, Any]:
    """``config.json`` of a model folder, folders written before format version 2 included."""
    try:
        meta = read_model_meta(model_dir, MODEL_TYPE)
    except RecursionError:  # JSON nested thousands deep: no config, and the message names it
        raise CheckpointError(f"{model_dir / CONFIG_NAME}: nested too deeply to read") from None
    except CheckpointError:
        meta = read_json_object(model_dir / CONFIG_NAME)
        if meta.get("model_type") != LEGACY_MODEL_TYPE:
            raise
        meta = {**meta, "format_version": 1}
    version = meta.get("format_version")
    if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise CheckpointError(
            f"{model_dir}: config.json format_version {version!r}; this difforge-traj reads "
            f"1 to {FORMAT_VERSION} (a newer difforge-traj wrote it?)"
        )
    dataset = meta.get("dataset")
    if isinstance(dataset, dict) and isinstance(dataset.get("path"), str):
        # training stores the data folder relative to the model folder (older ones: absolute)
        meta["dataset"] = {**dataset, "path": str((Path(model_dir) / dataset["path"]).resolve())}
    return meta


def resolve_model_dir(name: str | Path) -> Path:
    """``"default"`` -> the shipped default model folder; anything else is a folder path."""
    return pretrained.resolve_model_dir(name, DEFAULT_MODEL_DIR, "difforge-traj")


def model_data_dir(meta: dict[str, Any], data: str | Path | None = None) -> Path:
    """The dataset folder whose training set a model's OD requests come from.

    ``data`` if given (its road network must be the model's), else the folder the model was
    trained on if it still exists, else the shipped dataset of the same name.
    """
    expected = meta.get("roadmap_sha256")
    if data is not None:
        data = Path(data)
        if roadmap_fingerprint(data) != expected:
            raise UserError(f"{data}: its road network is not the one the model was trained on")
        return data
    info = meta.get("dataset", {})
    candidates = [Path(info["path"])] if info.get("path") else []
    if info.get("name") in available_datasets():
        candidates.append(dataset_dir(info["name"]))
    for candidate in candidates:
        if (candidate / "train.csv").is_file() and roadmap_fingerprint(candidate) == expected:
            return candidate
    raise UserError(
        f"cannot find the model's training data ({info.get('name', 'unknown')}); pass --data DIR"
    )
