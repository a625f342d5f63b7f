"""Model folders on disk: ``"default"`` vs a path, JSON metadata, ``save_pretrained`` components.

Every domain package ships a default model folder and accepts users' folders; these helpers give
them one behaviour: one-line errors (:class:`UserError` for a wrong argument,
:class:`CheckpointError` for a damaged folder), safetensors only (never pickles), float32 in eval
mode.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import torch

from difforge.core.config import from_dict, to_dict
from difforge.core.errors import CheckpointError, UserError
from difforge.core.io import write_json

if TYPE_CHECKING:
    from diffusers import ModelMixin

CONFIG_NAME = "config.json"
T = TypeVar("T")


def resolve_model_dir(
    name: str | os.PathLike[str], default_dir: Path, package: str, config_name: str = CONFIG_NAME
) -> Path:
    """``"default"`` -> ``default_dir`` (the package's shipped model); anything else is a folder
    path. Either must hold ``config_name``. ``package`` (e.g. ``"difforge-traj"``) names the
    command in the messages."""
    if str(name) == "default":
        if not (default_dir / config_name).is_file():
            raise UserError(
                f"the default model is missing: {default_dir} holds no {config_name} "
                f"(train one with `{package} train` and pass --model DIR)"
            )
        return default_dir
    path = Path(name)
    if not (path / config_name).is_file():
        raise UserError(f"{path}: not a {package} model folder (no {config_name})")
    return path


def read_json_object(path: Path) -> dict[str, Any]:
    """A JSON file that must hold one object (a model's metadata)."""
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: unreadable ({exc})") from None
    except RecursionError:
        raise CheckpointError(f"{path}: nested too deeply to be a model's metadata") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: not a JSON object")
    return meta


def load_component(cls: type[ModelMixin], folder: Path) -> Any:
    """A diffusers ``save_pretrained`` folder as ``cls``: safetensors only, float32, eval mode."""
    if not (folder / CONFIG_NAME).is_file():
        raise CheckpointError(f"{folder}: missing ({CONFIG_NAME} not found)")
    try:
        model = cls.from_pretrained(
            folder, use_safetensors=True, local_files_only=True, torch_dtype=torch.float32
        )
    except (OSError, ValueError, RuntimeError, TypeError, KeyError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{folder}: cannot load ({first_line})") from None
    return model.float().eval()


def save_component(model: ModelMixin, folder: Path, float16: bool = True) -> None:
    """``save_pretrained`` a CPU copy of ``model``, float16 unless ``float16=False`` (half the
    size; :func:`load_component` converts back to float32)."""
    copy_ = copy.deepcopy(model).cpu()
    if float16:
        # Tensor by tensor: ModelMixin.to(dtype) warns about mixed-precision modules.
        for tensor in itertools.chain(copy_.parameters(), copy_.buffers()):
            tensor.data = tensor.data.half()
    copy_.save_pretrained(folder)


def read_model_meta(model_dir: Path, model_type: str) -> dict[str, Any]:
    """``model_dir/config.json``, which must name ``model_type`` (e.g. ``"difforge-hair"``)."""
    meta = read_json_object(model_dir / CONFIG_NAME)
    if meta.get("model_type") != model_type:
        raise CheckpointError(f"{model_dir}: not a {model_type} model folder")
    return meta


def write_model_meta(folder: Path, model_type: str, sampling: Any, info: dict[str, Any]) -> None:
    """``folder/config.json``: the model type, the sampling defaults (a config dataclass) and
    ``info`` (training data, metrics, versions) at the top level."""
    write_json(
        folder / CONFIG_NAME, {"model_type": model_type, "sampling": to_dict(sampling), **info}
    )


def split_model_meta(meta: dict[str, Any], sampling_cls: type[T]) -> tuple[T, dict[str, Any]]:
    """The inverse of :func:`write_model_meta`: ``(sampling config, info)``."""
    sampling = from_dict(sampling_cls, meta.get("sampling", {}), prefix="sampling.")
    return sampling, {k: v for k, v in meta.items() if k not in ("model_type", "sampling")}
