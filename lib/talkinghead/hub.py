"""Weights: ``weights/`` first, then the Hugging Face Hub; safetensors only; sha256 checked against the manifest.

``weights/manifest.json`` has one entry per file::

    {"syncnet.safetensors": {"sha256": "...", "config": "synth128", "data": "SynthGRID seed 0, train speakers",
                             "steps": 12000, "metrics": {...}, "dtype": "float16", "bytes": 1234}}

``save_weights`` writes a state dict (fp16 by default) and its entry atomically; ``load_weights`` finds a file by
name, verifies its hash and returns float32 tensors (or the dtype asked for).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from talkinghead.io import write_text_atomic

__all__ = ["WEIGHTS_DIR", "HUB_REPO_ENV", "WeightsError", "weights_path", "load_weights", "load_state_strict", "save_weights",
           "read_manifest", "sha256"]

WEIGHTS_DIR = Path(os.environ.get("TALKINGHEAD_WEIGHTS", Path(__file__).resolve().parents[2] / "weights"))
HUB_REPO_ENV = "TALKINGHEAD_HUB_REPO"  # e.g. "talkinghead/weights": where to look when weights/ lacks a file


class WeightsError(RuntimeError):
    """Weights missing, corrupt or unreachable. The message says where we looked and what to do."""


def sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_manifest(root: str | os.PathLike | None = None) -> dict[str, Any]:
    """The manifest of ``root`` (default: the project's ``weights/``); empty when there is none."""
    path = Path(root or WEIGHTS_DIR) / "manifest.json"
    return json.loads(path.read_text()) if path.exists() else {}


def weights_path(name: str, *, root: str | os.PathLike | None = None, repo_id: str | None = None) -> Path:
    """Find ``name`` (e.g. ``"syncnet.safetensors"``): an existing path as given, then ``weights/``, then the Hub
    repo ``repo_id`` (default: the ``TALKINGHEAD_HUB_REPO`` environment variable). Verifies the sha256 when the
    manifest lists the file."""
    candidate = Path(name)
    root = Path(root or WEIGHTS_DIR)
    if candidate.is_file():
        path = candidate
    elif (root / name).is_file():
        path = root / name
    else:
        repo_id = repo_id or os.environ.get(HUB_REPO_ENV)
        if not repo_id:
            raise WeightsError(
                f"weights {name!r} not found in {root}: train them (see the README) or set {HUB_REPO_ENV} to a "
                "Hugging Face Hub repo that has them"
            )
        try:
            from huggingface_hub import hf_hub_download

            path = Path(hf_hub_download(repo_id=repo_id, filename=name))
        except Exception as err:  # offline, missing repo or file: one clear message
            raise WeightsError(
                f"weights {name!r} are not in {root} and could not be fetched from the Hub repo {repo_id!r} "
                f"({type(err).__name__}: {err}): copy the file into {root} or check the network"
            ) from err
    expected = read_manifest(path.parent).get(path.name, {}).get("sha256")
    if expected and sha256(path) != expected:
        raise WeightsError(f"{path} does not match the sha256 in its manifest: the file is corrupt or was replaced; download it again")
    return path


def load_weights(name: str, *, root: str | os.PathLike | None = None, dtype: Any = None, repo_id: str | None = None) -> dict:
    """Load a safetensors state dict by name (see ``weights_path``), cast to ``dtype`` (default float32)."""
    import torch
    from safetensors.torch import load_file

    dtype = dtype or torch.float32
    state = load_file(weights_path(name, root=root, repo_id=repo_id))
    return {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}


def load_state_strict(module: Any, state: dict, *, problem: str, fix: str) -> None:
    """Load ``state`` into ``module`` only if every name and shape matches (cast to the module's dtypes).

    Raises:
        WeightsError: ``problem`` (e.g. "x.safetensors does not fit the … net"), the missing, unexpected and wrongly
            shaped names, and ``fix``.
    """
    expected = module.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    wrong = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}" for k, v in expected.items()
             if k in state and state[k].shape != v.shape]
    if missing or unexpected or wrong:
        raise WeightsError(f"{problem}: missing {missing[:5] or 'none'}, unexpected {unexpected[:5] or 'none'}, "
                           f"wrong shapes {wrong[:5] or 'none'}; {fix}")
    module.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()}, strict=True)


def save_weights(
    state_dict: dict,
    name: str,
    *,
    root: str | os.PathLike | None = None,
    half: bool = True,
    **entry: Any,
) -> Path:
    """Write ``state_dict`` to ``root/name`` as safetensors (fp16 unless ``half=False``) and record it in the
    manifest with its sha256 and the given ``entry`` fields (config, data, steps, metrics…). Atomic: a crash
    leaves the previous file and manifest in place."""
    import torch
    from safetensors.torch import save_file

    root = Path(root or WEIGHTS_DIR)
    root.mkdir(parents=True, exist_ok=True)
    tensors = {
        k: (v.detach().to(torch.float16) if half and v.is_floating_point() else v.detach()).contiguous().cpu()
        for k, v in state_dict.items()
    }
    path = root / name
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    save_file(tensors, str(tmp))
    digest = sha256(tmp)
    os.replace(tmp, path)
    manifest = read_manifest(root)
    manifest[name] = {**entry, "sha256": digest, "dtype": "float16" if half else "float32", "bytes": path.stat().st_size}
    write_text_atomic(root / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return path
