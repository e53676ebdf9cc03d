"""Convert NVIDIA StyleGAN2 network pickles (stylegan2-ada-pytorch format) to safetensors, without running them.

An official ``.pkl`` is a pickled dict (``'G'``, ``'D'``, ``'G_ema'``, ``'augment_pipe'``, ``'training_set_kwargs'``)
whose networks are ``torch_utils.persistence`` objects: each pickles as a call
``torch_utils.persistence._reconstruct_persistent_obj(meta)`` where ``meta`` holds the module's Python source
(``module_src``), its class name and its ``state`` (the ``nn.Module.__dict__``). ``pickle.load`` would import
and execute that source, and any pickle can name any callable. So we unpickle with ``SafeUnpickler``:

- ``find_class`` resolves only an explicit whitelist (the tensor and parameter rebuild functions, ``OrderedDict``,
  ``set``, ``frozenset``, torch dtypes, numpy scalars and arrays of plain dtypes, ``dnnlib.EasyDict`` as a plain
  dict), each mapped to a stand-in written here that checks its arguments; anything else raises
  ``UnsafePickleError`` naming the global, before anything is called;
- ``_reconstruct_persistent_obj`` becomes ``CapturedModule``, which keeps the class name and the ``state`` dict and
  drops ``module_src`` unread (only its length and sha256 are kept for the report);
- tensor storages inside the pickle are themselves small legacy ``torch.save`` files; they are opened with
  ``torch.load(weights_only=True)``, torch's own restricted unpickler.

The captured tree (``_parameters``, ``_buffers``, ``_modules``) becomes a flat state dict with dotted names,
which must match ``networks.Generator`` / ``Discriminator`` for the config inferred from the tensor shapes, and is
written with that config in the safetensors metadata (temporary file + ``os.replace``, so a crash leaves no
half-written file). ``Generator.from_safetensors`` loads it back strictly.
"""
from __future__ import annotations

import argparse
import collections
import hashlib
import io
import os
import pickle
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from talkinghead.io import InputError
from talkinghead.stylegan2.networks import Config, Discriminator, Generator

__all__ = [
    "UnsafePickleError",
    "CapturedModule",
    "SafeUnpickler",
    "load_network_pickle",
    "module_state_dict",
    "infer_config",
    "convert_pickle",
    "add_convert_parser",
    "main_convert",
]

FORMAT = "talkinghead.stylegan2/1"  # the "format" metadata entry of converted files


class UnsafePickleError(InputError):
    """The pickle asks for something the safe loader does not allow; nothing of it was executed."""


# --------------------------------------------------------------------------- stand-ins for the allowed globals


@dataclass
class CapturedModule:
    """What a persistent object leaves behind: its class name and state, never its code."""

    class_name: str
    state: dict
    module_src_sha256: str = ""
    module_src_chars: int = 0


def _reconstruct_persistent_obj(meta: Any) -> CapturedModule:
    """Stand-in for ``torch_utils.persistence._reconstruct_persistent_obj``: keeps ``meta['state']``; the source in
    ``meta['module_src']`` is hashed for the report and otherwise ignored."""
    if not isinstance(meta, dict) or meta.get("type") != "class" or not isinstance(meta.get("class_name"), str):
        raise UnsafePickleError(f"a persistent object's metadata is not a class record (got {type(meta).__name__}): refusing it")
    state = meta.get("state") or {}
    if not isinstance(state, dict):
        raise UnsafePickleError(f"persistent object {meta['class_name']!r} has a state of type {type(state).__name__}, expected a dict")
    src = meta.get("module_src")
    src = src if isinstance(src, str) else ""
    return CapturedModule(meta["class_name"], dict(state), hashlib.sha256(src.encode()).hexdigest(), len(src))


def _load_storage(data: bytes) -> Any:
    """Stand-in for ``torch.storage._load_from_bytes``: the bytes are a legacy ``torch.save`` of one storage, read
    with torch's restricted unpickler instead of the unrestricted one the original uses."""
    if not isinstance(data, (bytes, bytearray)):
        raise UnsafePickleError(f"a tensor storage record holds {type(data).__name__}, not bytes")
    try:
        storage = torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as err:
        raise UnsafePickleError(f"a tensor storage inside the pickle asks for something torch's weights-only loader refuses: {err}") from err
    if not isinstance(storage, (torch.TypedStorage, torch.UntypedStorage)):
        raise UnsafePickleError(f"a tensor storage record decoded to {type(storage).__name__}, not a storage")
    return storage


def _rebuild_tensor(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None) -> torch.Tensor:
    """Stand-in for ``torch._utils._rebuild_tensor_v2`` (and the older ``_rebuild_tensor``): a view of a storage."""
    if not isinstance(storage, (torch.TypedStorage, torch.UntypedStorage)):
        raise UnsafePickleError(f"a tensor was to be built from {type(storage).__name__}, not a storage")
    if backward_hooks:
        raise UnsafePickleError("a tensor in the pickle carries backward hooks (code): refusing it")
    dtype = storage.dtype if isinstance(storage, torch.TypedStorage) else torch.uint8
    untyped = storage._untyped_storage if isinstance(storage, torch.TypedStorage) else storage
    return torch.empty(0, dtype=dtype).set_(untyped, int(storage_offset), tuple(size), tuple(stride))


def _rebuild_parameter(data, requires_grad=True, backward_hooks=None, state=None) -> torch.Tensor:
    """Stand-in for ``torch._utils._rebuild_parameter(_with_state)``: the parameter's tensor."""
    if not isinstance(data, torch.Tensor):
        raise UnsafePickleError(f"a parameter was to be built from {type(data).__name__}, not a tensor")
    if backward_hooks or state:
        raise UnsafePickleError("a parameter in the pickle carries hooks or extra state: refusing it")
    return data


class _TypeName:
    """A class the pickle may name as an argument but never call (``torch.Tensor``, ``numpy.ndarray``)."""

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return self.name


_TENSOR_TYPES = (_TypeName("torch.Tensor"), _TypeName("torch.nn.Parameter"))


def _rebuild_from_type(func, new_type, args, state) -> torch.Tensor:
    """Stand-in for ``torch._tensor._rebuild_from_type_v2``: only plain tensors and parameters, no extra state."""
    if func not in (_rebuild_tensor, _rebuild_parameter) or new_type not in _TENSOR_TYPES or state:
        raise UnsafePickleError(f"a tensor of type {new_type!r} with custom state: refusing it")
    return func(*args)


def _numpy_scalar(dtype: np.dtype, data: Any = None) -> Any:
    """Stand-in for ``numpy.core.multiarray.scalar``: plain (non-object) dtypes only."""
    if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(data, bytes):
        raise UnsafePickleError(f"a numpy scalar of dtype {dtype!r}: only plain numeric scalars are allowed")
    return np.frombuffer(data, dtype=dtype, count=1)[0]


class _NumpyArray:
    """Stand-in for ``numpy.core.multiarray._reconstruct``: filled by the pickle's BUILD step, plain dtypes only."""

    def __init__(self, cls=None, shape=None, typecode=None):
        self.array = None

    def __setstate__(self, state):
        version, shape, dtype, is_fortran, raw = state if len(state) == 5 else (None, *state)
        if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(raw, bytes):
            raise UnsafePickleError(f"a numpy array of dtype {dtype!r}: only plain numeric arrays are allowed")
        self.array = np.frombuffer(raw, dtype=dtype).reshape(shape, order="F" if is_fortran else "C").copy()


class _PlainDict(dict):
    """``dnnlib.util.EasyDict`` read as a plain dict."""


def _refuse(module: str, name: str, why: str):
    raise UnsafePickleError(
        f"refusing to load {module}.{name} from the pickle: {why}. Only tensors, plain containers and the "
        "stylegan2-ada-pytorch network records are allowed; if this is an official NVIDIA network pickle, report it"
    )


_NUMPY_CORE = ("numpy.core.multiarray", "numpy._core.multiarray")
_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type,
    ("torch", "Tensor"): _TENSOR_TYPES[0],
    ("torch.nn.parameter", "Parameter"): _TENSOR_TYPES[1],
    ("torch", "Size"): torch.Size,
    ("torch", "device"): torch.device,
    ("torch.storage", "_load_from_bytes"): _load_storage,
    ("numpy", "dtype"): np.dtype,
    ("numpy", "ndarray"): _TypeName("numpy.ndarray"),
    **{(core, "scalar"): _numpy_scalar for core in _NUMPY_CORE},
    **{(core, "_reconstruct"): _NumpyArray for core in _NUMPY_CORE},
    ("dnnlib.util", "EasyDict"): _PlainDict,
    ("dnnlib", "EasyDict"): _PlainDict,
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
}


class SafeUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves only the whitelist ``_ALLOWED`` (plus torch dtypes), each to a checked
    stand-in. Every other global raises ``UnsafePickleError`` before anything could call it."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        if module == "torch_utils.persistence":
            _refuse(module, name, "only _reconstruct_persistent_obj of torch_utils.persistence is understood")
        _refuse(module, name, "it is not on the whitelist of the safe loader (a pickle can name any callable, so unknown ones are never resolved)")

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"the pickle refers to an external object {pid!r}: network pickles have none; refusing it")


def load_network_pickle(path: str | os.PathLike) -> dict:
    """Unpickle an official network pickle safely. Returns its top-level dict, with each network a
    ``CapturedModule``. Raises ``UnsafePickleError`` for anything outside the whitelist, ``InputError`` when the
    file is missing or not a pickle."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} does not exist: pass the path of a stylegan2-ada-pytorch network pickle (.pkl)")
    with open(path, "rb") as f:
        try:
            data = SafeUnpickler(f).load()
        except UnsafePickleError:
            raise
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, RuntimeError) as err:
            raise InputError(f"{path} is not a readable network pickle ({type(err).__name__}: {err}): pass an official stylegan2-ada-pytorch .pkl") from err
    if not isinstance(data, dict) or not any(isinstance(v, CapturedModule) for v in data.values()):
        raise InputError(f"{path} holds no networks (expected a dict with 'G_ema', 'G', 'D'): is it a stylegan2-ada-pytorch network pickle?")
    return data


def module_state_dict(module: CapturedModule, prefix: str = "") -> dict[str, torch.Tensor]:
    """Flatten a captured module tree into an ``nn.Module``-style state dict: parameters, persistent buffers and
    children (``_parameters``, ``_buffers``, ``_modules``), names joined with dots."""
    state = module.state
    out: dict[str, torch.Tensor] = {}
    non_persistent = state.get("_non_persistent_buffers_set") or set()
    for kind in ("_parameters", "_buffers"):
        for name, tensor in (state.get(kind) or {}).items():
            if tensor is None or (kind == "_buffers" and name in non_persistent):
                continue
            if not isinstance(tensor, torch.Tensor):
                raise InputError(f"{prefix}{name} of {module.class_name} is a {type(tensor).__name__}, not a tensor: not a network pickle")
            out[prefix + name] = tensor
    for name, child in (state.get("_modules") or {}).items():
        if child is None:
            continue
        if not isinstance(child, CapturedModule):
            raise InputError(f"submodule {prefix}{name} is a {type(child).__name__}, not a persistent network module")
        out.update(module_state_dict(child, prefix + name + "."))
    return out


def _attr(module: CapturedModule, dotted: str, default: Any = None) -> Any:
    """A plain attribute of a captured submodule (``'synthesis.b4.conv1.conv_clamp'``), or ``default``."""
    *path, name = dotted.split(".")
    for part in path:
        module = (module.state.get("_modules") or {}).get(part)
        if not isinstance(module, CapturedModule):
            return default
    value = module.state.get(name, default)
    return value.item() if isinstance(value, np.generic) else value


def infer_config(g_state: dict[str, torch.Tensor], g_module: CapturedModule | None = None, d_module: CapturedModule | None = None) -> Config:
    """The ``Config`` of a generator state dict, from its tensor shapes; fields that leave no trace in the shapes
    (mixed precision, conv clamp, mapping learning-rate multiplier, minibatch-stddev group) are read from the plain
    attributes of the captured modules when given, else left at their defaults."""
    try:
        fcs = sorted(int(k.split(".")[1][2:]) for k in g_state if k.startswith("mapping.fc") and k.endswith(".weight"))
        w_dim = g_state["mapping.w_avg"].shape[0]
        c_dim = g_state["mapping.embed.weight"].shape[1] if "mapping.embed.weight" in g_state else 0
        z_dim = g_state["mapping.fc0.weight"].shape[1] - (w_dim if c_dim else 0)
        resolutions = sorted(int(k.split(".")[1][1:]) for k in g_state if k.startswith("synthesis.b") and k.endswith(".conv1.weight"))
        channels = {res: g_state[f"synthesis.b{res}.conv1.weight"].shape[0] for res in resolutions}
        img_resolution = resolutions[-1]
        img_channels = g_state[f"synthesis.b{img_resolution}.torgb.weight"].shape[0]
    except (KeyError, IndexError, ValueError) as err:
        raise InputError(f"not a StyleGAN2 generator state dict (missing or odd {err}): the pickle's G_ema is not the official architecture") from err
    channel_max = max(channels.values())
    below = [res for res in resolutions if channels[res] < channel_max]
    channel_base = channels[below[0]] * below[0] if below else channel_max * img_resolution
    cfg = Config(
        z_dim=z_dim, w_dim=w_dim, c_dim=c_dim, img_resolution=img_resolution, img_channels=img_channels,
        channel_base=channel_base, channel_max=channel_max, mapping_layers=len(fcs),
    )
    if any(cfg.channels(res) != channels[res] for res in resolutions):
        raise InputError(f"the channel counts {channels} do not follow min(base // res, max) for any base: not a supported StyleGAN2 generator")
    if g_module is not None:
        fp16 = [_attr(g_module, f"synthesis.b{res}.use_fp16", False) for res in resolutions]
        clamp = _attr(g_module, f"synthesis.b{img_resolution}.conv1.conv_clamp")
        cfg = replace(
            cfg,
            num_fp16_res=int(sum(bool(x) for x in fp16)),
            conv_clamp=float(clamp) if clamp is not None else None,
            mapping_lr_multiplier=float(_attr(g_module, "mapping.fc0.bias_gain", cfg.mapping_lr_multiplier)),
            w_avg_beta=float(_attr(g_module, "mapping.w_avg_beta", cfg.w_avg_beta)),
        )
    if d_module is not None:
        group = _attr(d_module, "b4.mbstd.group_size", cfg.mbstd_group_size)
        cfg = replace(
            cfg,
            mbstd_group_size=int(group) if group is not None else cfg.mbstd_group_size,
            mbstd_num_channels=int(_attr(d_module, "b4.mbstd.num_channels", cfg.mbstd_num_channels)),
        )
    return cfg


def _check_against(net_cls, cfg: Config, state: dict[str, torch.Tensor], name: str) -> None:
    with torch.device("meta"):  # names and shapes only: nothing is allocated
        expected = {k: tuple(v.shape) for k, v in net_cls(cfg).state_dict().items()}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if tuple(state[k].shape) != expected[k])
    if missing or unexpected or wrong:
        details = "; ".join(
            f"{label}: {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''}"
            for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if keys
        )
        raise InputError(f"{name} does not match our {net_cls.__name__} for {cfg} ({details}): the pickle is not the StyleGAN2 (config F) architecture")


def convert_pickle(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    networks: tuple[str, ...] = ("G_ema",),
) -> tuple[Path, Config]:
    """Convert an official network pickle to a safetensors file holding ``networks`` (default the EMA generator;
    add ``'G'`` and ``'D'`` to keep the training networks) with keys ``<network>.<parameter name>``.

    Every state dict is checked against ``Generator`` / ``Discriminator`` for the inferred config before writing.
    The metadata holds ``format``, ``config`` (JSON), ``networks`` and ``source`` (the pickle's file name).
    Returns the written path and the config."""
    data = load_network_pickle(src)
    for name in networks:
        if not isinstance(data.get(name), CapturedModule):
            raise InputError(f"{src} has no network {name!r} (it has {', '.join(k for k, v in data.items() if isinstance(v, CapturedModule))})")
    if "G_ema" in data or "G" in data:
        g_key = "G_ema" if isinstance(data.get("G_ema"), CapturedModule) else "G"
    else:
        raise InputError(f"{src} has no generator ('G_ema' or 'G'): the config cannot be inferred")
    d_module = data.get("D") if isinstance(data.get("D"), CapturedModule) else None
    cfg = infer_config(module_state_dict(data[g_key]), data[g_key], d_module)
    tensors: dict[str, torch.Tensor] = {}
    for name in networks:
        state = module_state_dict(data[name])
        _check_against(Discriminator if name == "D" else Generator, cfg, state, f"{Path(src).name}[{name!r}]")
        tensors.update({f"{name}.{k}": v.detach().clone().contiguous() for k, v in state.items()})  # clone: no shared storage

    from safetensors.torch import save_file

    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    metadata = {"format": FORMAT, "config": cfg.to_json(), "networks": ",".join(networks), "source": Path(src).name}
    try:
        save_file(tensors, str(tmp), metadata=metadata)
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    return dst, cfg


# --------------------------------------------------------------------------- command line


def add_convert_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``convert-stylegan2 in.pkl out.safetensors [--all]`` to the CLI's subparsers."""
    p = sub.add_parser("convert-stylegan2", help="convert an NVIDIA StyleGAN2(-ADA) network pickle to safetensors, without executing it")
    p.add_argument("src", help="stylegan2-ada-pytorch network pickle (.pkl)")
    p.add_argument("dst", help="output .safetensors path")
    p.add_argument("--all", action="store_true", help="keep G and D as well as G_ema (to resume training or fine-tune)")
    p.set_defaults(func=main_convert)


def main_convert(args: argparse.Namespace) -> int:
    networks = ("G_ema", "G", "D") if args.all else ("G_ema",)
    path, cfg = convert_pickle(args.src, args.dst, networks=networks)
    print(f"{args.src} -> {path} ({', '.join(networks)}; {cfg.img_resolution} px, channel_base {cfg.channel_base}, "
          f"channel_max {cfg.channel_max}, mapping {cfg.mapping_layers} layers)")
    print(f"load it with talkinghead.stylegan2.Generator.from_safetensors({str(path)!r})")
    return 0
