"""Training checkpoints: every tensor in safetensors, everything else in a small JSON, written atomically.

A checkpoint is a folder ``<out>/checkpoints/step_00001000/`` holding

- ``nets.safetensors``: every network's state dict (``G.…``, ``D_frame.…``) and the EMA generator (``G_ema.…``);
- ``optim.safetensors``: every optimiser's tensors (Adam moments, step counts) and the RNG states (``rng.…``);
- ``state.json``: step, config, optimiser hyper-parameters and the layout of their state, the data position
  (epoch, batches consumed), the EMA's update count, NumPy and Python RNG states, and anything ``extra``.

The folder is written under a temporary name and renamed, and ``<out>/checkpoints/latest`` (a text file with the
folder's name) is replaced last, so an interruption at any point leaves the previous checkpoint usable.
No pickle anywhere: loading a checkpoint never runs code.
"""
from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

__all__ = ["save_checkpoint", "load_checkpoint", "load_nets", "latest_checkpoint", "resolve_checkpoint", "optimizer_to_flat", "optimizer_from_flat"]


def optimizer_to_flat(opt: torch.optim.Optimizer, prefix: str) -> tuple[dict[str, torch.Tensor], dict]:
    """An optimiser's state dict split into tensors (``prefix.<param index>.<key>``) and a JSON-able rest."""
    sd = opt.state_dict()
    tensors, layout = {}, {}
    for index, state in sd["state"].items():
        layout[str(index)] = {}
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"{prefix}.{index}.{key}"] = value.detach().cpu().contiguous()
                layout[str(index)][key] = "tensor"
            else:
                layout[str(index)][key] = value
    return tensors, {"param_groups": sd["param_groups"], "state": layout}


def optimizer_from_flat(opt: torch.optim.Optimizer, prefix: str, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """Inverse of ``optimizer_to_flat``: load the state into ``opt``."""
    state = {}
    for index, layout in meta["state"].items():
        state[int(index)] = {k: tensors[f"{prefix}.{index}.{k}"] if v == "tensor" else v for k, v in layout.items()}
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def _rng_state() -> tuple[dict[str, torch.Tensor], dict]:
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    meta = {"numpy": [kind, keys.tolist(), pos, has_gauss, gauss], "python": [version, list(internal), gauss_next]}
    return tensors, meta


def _set_rng_state(tensors: dict[str, torch.Tensor], meta: dict) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    cuda = [tensors[k] for k in sorted((k for k in tensors if k.startswith("rng.cuda.")), key=lambda k: int(k.rsplit(".", 1)[1]))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])
    kind, keys, pos, has_gauss, gauss = meta["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = meta["python"]
    random.setstate((version, tuple(internal), gauss_next))


def latest_checkpoint(root: str | os.PathLike) -> Path | None:
    """The folder ``root/checkpoints/latest`` names, or None when there is none."""
    pointer = Path(root) / "checkpoints" / "latest"
    if not pointer.is_file():
        return None
    path = pointer.parent / pointer.read_text().strip()
    return path if (path / "state.json").is_file() else None


def save_checkpoint(
    root: str | os.PathLike,
    *,
    step: int,
    nets: dict[str, torch.nn.Module],
    opts: dict[str, torch.optim.Optimizer],
    ema=None,
    scalers: dict[str, Any] | None = None,
    extra: dict | None = None,
    keep: int = 2,
) -> Path:
    """Write a checkpoint of everything training needs to continue exactly; keep the newest ``keep``.

    Returns the checkpoint folder.
    """
    folder = Path(root) / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    name = f"step_{step:08d}"
    weights = {f"{net}.{k}": v.detach().cpu().contiguous() for net, m in nets.items() for k, v in m.state_dict().items()}
    if ema is not None:
        weights.update({f"G_ema.{k}": v.detach().cpu().contiguous() for k, v in ema.state_dict().items()})
    optim_tensors, optim_meta = {}, {}
    for key, opt in opts.items():
        t, m = optimizer_to_flat(opt, f"opt.{key}")
        optim_tensors.update(t)
        optim_meta[key] = m
    rng_tensors, rng_meta = _rng_state()
    optim_tensors.update(rng_tensors)
    state = {
        "step": step,
        "optimizers": optim_meta,
        "scalers": {k: s.state_dict() for k, s in (scalers or {}).items()},
        "ema_updates": None if ema is None else ema.updates,
        "rng": rng_meta,
        **(extra or {}),
    }
    tmp = folder / f".{name}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_file(weights, str(tmp / "nets.safetensors"))
    save_file(optim_tensors, str(tmp / "optim.safetensors"))
    (tmp / "state.json").write_text(json.dumps(state, indent=1))
    final = folder / name
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    pointer_tmp = folder / f".latest.tmp{os.getpid()}"
    pointer_tmp.write_text(name)
    os.replace(pointer_tmp, folder / "latest")
    for old in sorted(p for p in folder.glob("step_*") if p.is_dir())[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_nets(path: str | os.PathLike, *, nets: dict[str, torch.nn.Module], ema=None) -> dict:
    """Restore only the networks (and the EMA generator) of a checkpoint folder; return its ``state.json``.

    Every network's keys and shapes must match exactly (a checkpoint of another architecture or of other widths
    is refused with the differences); settings that leave the shapes alone (window length, loss weights,
    learning rates) may differ, which is what a warm start (``fit(init_from=…)``) needs.
    """
    path = Path(path)
    state = json.loads((path / "state.json").read_text())
    weights = load_file(str(path / "nets.safetensors"))
    for net, module in list(nets.items()) + ([("G_ema", ema.model)] if ema is not None else []):
        sd = {k[len(net) + 1 :]: v for k, v in weights.items() if k.startswith(net + ".")}
        expected = module.state_dict()
        missing, unexpected = sorted(set(expected) - set(sd)), sorted(set(sd) - set(expected))
        wrong = [k for k in expected if k in sd and sd[k].shape != expected[k].shape]
        if missing or unexpected or wrong:
            raise ValueError(f"checkpoint {path} does not fit network {net}: missing {missing[:5]}, unexpected "
                             f"{unexpected[:5]}, wrong shapes {wrong[:5]}: was it written with another config?")
        module.load_state_dict(sd, strict=True)
    if ema is not None:
        ema.updates = int(state["ema_updates"] or 0)
    return state


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint folder from a run folder (its latest checkpoint) or a checkpoint folder itself."""
    path = Path(path)
    if (path / "state.json").is_file():
        return path
    latest = latest_checkpoint(path)
    if latest is None:
        raise FileNotFoundError(f"{path} is neither a checkpoint folder (with state.json) nor a run folder with "
                                "checkpoints/latest: pass the --out of a training run or one of its checkpoints/step_* folders")
    return latest


def load_checkpoint(
    path: str | os.PathLike,
    *,
    nets: dict[str, torch.nn.Module],
    opts: dict[str, torch.optim.Optimizer],
    ema=None,
    scalers: dict[str, Any] | None = None,
) -> dict:
    """Restore nets, optimisers, EMA, scalers and RNG states from a checkpoint folder; return its ``state.json``.

    Every network's keys must match exactly (a checkpoint of another config is refused with the differences).
    """
    path = Path(path)
    state = load_nets(path, nets=nets, ema=ema)
    tensors = load_file(str(path / "optim.safetensors"))
    for key, opt in opts.items():
        optimizer_from_flat(opt, f"opt.{key}", tensors, state["optimizers"][key])
    for key, scaler in (scalers or {}).items():
        if key in state.get("scalers", {}):
            scaler.load_state_dict(state["scalers"][key])
    _set_rng_state(tensors, state["rng"])
    return state
