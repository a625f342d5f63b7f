"""Training checkpoints: safetensors for tensors, JSON for everything else, written atomically.

A checkpoint is a folder ``<root>/step_00001000/`` holding

- ``state.json``: format version, step, the run config and the model config, every component's
  non-tensor state (optimizer hyper-parameters, EMA settings, sampler position, Python/NumPy RNG
  states...) with each tensor replaced by a reference, and the byte size of every file;
- ``<component>.safetensors`` for each component that has tensors (``model``, ``ema``,
  ``optimizer``, ``rng``...). ``model.safetensors`` keys are the model's state-dict keys, so the
  file loads on its own with any safetensors tool.

Nothing is ever unpickled: the JSON holds only plain data plus four tags (``__tensor__``,
``__tuple__``, ``__items__`` for dicts with non-string keys, ``__ndarray__``), which is enough for
torch optimizer and scheduler state dicts, diffusers ``EMAModel`` and RNG states to round-trip
exactly. The folder is assembled under a temporary name and renamed into place, so a crash never
leaves a partial checkpoint; loading reads and checks every file before it returns, so a truncated
checkpoint fails before anything is changed.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from difforge.core.config import config_diff, to_dict
from difforge.core.errors import CheckpointError
from difforge.core.io import atomic_dir, atomic_path, write_json

__all__ = [
    "Checkpoint",
    "atomic_dir",
    "capture_rng_state",
    "check_model_config",
    "checkpoint_path",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "prune_checkpoints",
    "remove_unfinished_checkpoints",
    "restore_rng_state",
    "save_checkpoint",
]

FORMAT = "difforge-checkpoint"
FORMAT_VERSION = 1
STATE_FILE = "state.json"
_STEP_DIR = re.compile(r"^step_(\d+)$")


@dataclass
class Checkpoint:
    """A loaded checkpoint: every tensor is on the CPU, every file has been checked."""

    path: Path
    step: int
    components: dict[str, Any]
    config: Any
    model_config: Any


def checkpoint_path(root: str | Path, step: int) -> Path:
    """Where the checkpoint of ``step`` lives under ``root``."""
    return Path(root) / f"step_{step:08d}"


def save_checkpoint(
    root: str | Path,
    step: int,
    components: Mapping[str, Any],
    *,
    config: Any = None,
    model_config: Any = None,
) -> Path:
    """Write ``components`` (name -> nested state with tensors) as ``<root>/step_<step>``, atomically.

    ``config`` and ``model_config`` are dataclasses or mappings, stored as JSON; resume compares
    the model config (:func:`check_model_config`). An existing checkpoint of the same step is
    replaced whole. Returns the checkpoint folder.
    """
    target = checkpoint_path(root, step)
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "step": step,
        "config": to_dict(config),
        "model_config": to_dict(model_config),
        "components": {},
        "files": {},
    }
    with atomic_dir(target, overwrite=True) as tmp:
        for name, state in components.items():
            tensors: dict[str, torch.Tensor] = {}
            manifest["components"][name] = _encode(state, "", tensors, {})
            if tensors:
                filename = f"{name}.safetensors"
                with atomic_path(tmp / filename) as part:
                    save_file(tensors, str(part), metadata={"format": FORMAT})
                manifest["files"][filename] = (tmp / filename).stat().st_size
        # state.json is written last: a folder without it was never finished.
        write_json(tmp / STATE_FILE, manifest)
    return target


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read and check a checkpoint folder; raise CheckpointError (one line) if it is unusable."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    state_file = path / STATE_FILE
    if not state_file.is_file():
        hint = ""
        if path.is_dir() and latest_checkpoint(path) is not None:
            hint = f" (it holds checkpoints: pass {latest_checkpoint(path)})"
        raise CheckpointError(f"not a checkpoint (no {STATE_FILE}): {path}{hint}")
    try:
        manifest = json.loads(state_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(
            f"checkpoint {path} is truncated or corrupt: {STATE_FILE}: {exc}"
        ) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CheckpointError(f"not a difforge checkpoint: {state_file}")
    if manifest.get("version") != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {manifest.get('version')}, this difforge reads {FORMAT_VERSION}"
        )
    components = {}
    for name, encoded in manifest["components"].items():
        filename = f"{name}.safetensors"
        tensors = _read_tensors(path, filename, manifest["files"].get(filename))
        try:
            components[name] = _decode(encoded, tensors)
        except KeyError as exc:
            raise CheckpointError(
                f"checkpoint {path} is corrupt: {filename} lacks tensor {exc}"
            ) from None
    return Checkpoint(
        path=path,
        step=int(manifest["step"]),
        components=components,
        config=manifest.get("config"),
        model_config=manifest.get("model_config"),
    )


def check_model_config(checkpoint: Checkpoint, model_config: Any) -> None:
    """Refuse to resume a model whose config differs from the checkpoint's, naming the keys."""
    differing = config_diff(checkpoint.model_config or {}, model_config or {})
    if differing:
        raise CheckpointError(
            f"checkpoint {checkpoint.path} was trained with a different model config; "
            f"differing keys: {', '.join(differing)}"
        )


def list_checkpoints(root: str | Path) -> list[Path]:
    """Finished checkpoints under ``root``, oldest step first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        match = _STEP_DIR.match(child.name)
        if match and (child / STATE_FILE).is_file():
            found.append((int(match.group(1)), child))
    return [p for _, p in sorted(found)]


def latest_checkpoint(root: str | Path) -> Path | None:
    """The finished checkpoint with the highest step under ``root``, or None."""
    found = list_checkpoints(root)
    return found[-1] if found else None


def prune_checkpoints(root: str | Path, keep_last: int) -> list[Path]:
    """Delete all but the newest ``keep_last`` checkpoints (``keep_last <= 0`` keeps all)."""
    if keep_last <= 0:
        return []
    old = list_checkpoints(root)[:-keep_last]
    for path in old:
        shutil.rmtree(path)
    return old


def remove_unfinished_checkpoints(root: str | Path) -> list[Path]:
    """Delete the temporary folders of checkpoint writes that a killed run never finished.

    Only call this while holding the run's lock: another live run's write would look the same.
    """
    root = Path(root)
    if not root.is_dir():
        return []
    leftovers = [p for p in root.glob(".step_*.tmp") if p.is_dir()]
    leftovers += [p for p in root.glob(".step_*.old") if p.is_dir()]
    for path in leftovers:
        shutil.rmtree(path, ignore_errors=True)
    return leftovers


# ----------------------------------------------------------------------------------------------
# RNG states
# ----------------------------------------------------------------------------------------------


def capture_rng_state() -> dict[str, Any]:
    """The Python, NumPy, torch CPU and CUDA generator states of this process."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)
        else:  # another machine: restore the current device from the first saved state
            torch.cuda.set_rng_state(cuda_states[0])


# ----------------------------------------------------------------------------------------------
# Encoding nested state as JSON + a flat dict of tensors
# ----------------------------------------------------------------------------------------------


def _encode(obj: Any, key: str, tensors: dict[str, torch.Tensor], seen: dict[tuple, str]) -> Any:
    """JSON-ready copy of ``obj``; each tensor moves into ``tensors`` under a dotted key.

    ``seen`` maps a tensor's memory identity to the key it was stored under, so tied weights
    (one tensor under two names) are stored once and come back as one tensor.
    """
    if isinstance(obj, torch.Tensor):
        t = obj.detach()
        identity = (
            t.device,
            t.untyped_storage().data_ptr(),
            t.storage_offset(),
            tuple(t.shape),
            tuple(t.stride()),
            t.dtype,
        )
        if t.numel() > 0 and identity in seen:
            return {"__tensor__": seen[identity]}
        if key in tensors:
            raise ValueError(f"two tensors would be stored under the same key '{key}'")
        seen[identity] = key
        # clone: safetensors refuses tensors that share memory with another stored tensor.
        tensors[key] = t.to("cpu", copy=True).contiguous()
        return {"__tensor__": key}
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": obj.tolist(), "dtype": str(obj.dtype)}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, _join(key, i), tensors, seen) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, _join(key, i), tensors, seen) for i, v in enumerate(obj)]
    if isinstance(obj, Mapping):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: _encode(v, _join(key, k), tensors, seen) for k, v in obj.items()}
        return {
            "__items__": [
                [_encode(k, key, {}, {}), _encode(v, _join(key, k), tensors, seen)]
                for k, v in obj.items()
            ]
        }
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} at '{key}' in a checkpoint")


def _join(key: str, part: object) -> str:
    # Top-level dict keys stay bare, so model.safetensors keys are the model's state-dict keys.
    return f"{key}.{part}" if key else str(part)


def _decode(obj: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__tensor__" in obj:
        return tensors[obj["__tensor__"]]
    if "__tuple__" in obj:
        return tuple(_decode(v, tensors) for v in obj["__tuple__"])
    if "__items__" in obj:
        return {_decode(k, tensors): _decode(v, tensors) for k, v in obj["__items__"]}
    if "__ndarray__" in obj:
        return np.asarray(obj["__ndarray__"], dtype=np.dtype(obj["dtype"]))
    return {k: _decode(v, tensors) for k, v in obj.items()}


def _read_tensors(path: Path, filename: str, expected_size: int | None) -> dict[str, torch.Tensor]:
    if expected_size is None:
        return {}
    file = path / filename
    if not file.is_file():
        raise CheckpointError(f"checkpoint {path} is incomplete: {filename} is missing")
    size = file.stat().st_size
    if size != expected_size:
        raise CheckpointError(
            f"checkpoint file {file} is truncated or corrupt ({size} bytes, expected {expected_size})"
        )
    try:
        return load_file(str(file), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"checkpoint file {file} is corrupt: {reason}") from None
