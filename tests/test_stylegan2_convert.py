"""The safe converter of NVIDIA network pickles: a pickle built here in the official structure (persistent objects
that carry source code, nn.Module __dict__ states) converts to the same network, and no code in it ever runs."""
from __future__ import annotations

import copy
import os
import pickle
import sys
import types
from collections import OrderedDict

import numpy as np
import pytest
import torch

from talkinghead.cli import main as cli_main
from talkinghead.io import InputError
from talkinghead.stylegan2.convert import UnsafePickleError, convert_pickle, load_network_pickle
from talkinghead.stylegan2.networks import Config, Discriminator, Generator

torch.set_num_threads(1)
TINY = Config.preset("tiny")


@pytest.fixture
def official(monkeypatch, tmp_path):
    """Fake ``torch_utils.persistence`` and ``dnnlib.util`` modules like the official ones: reconstructing a
    persistent object EXECUTES its module source (here: the source writes a marker file)."""
    marker = tmp_path / "code_was_executed"
    persistence = types.ModuleType("torch_utils.persistence")

    def _reconstruct_persistent_obj(meta):
        exec(meta["module_src"], {})  # what the real loader does with the source
        return types.SimpleNamespace(**meta["state"])

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj
    torch_utils = types.ModuleType("torch_utils")
    torch_utils.persistence = persistence
    util = types.ModuleType("dnnlib.util")
    EasyDict = type("EasyDict", (dict,), {"__module__": "dnnlib.util"})
    util.EasyDict = EasyDict
    dnnlib = types.ModuleType("dnnlib")
    dnnlib.util = util
    for name, module in [("torch_utils", torch_utils), ("torch_utils.persistence", persistence), ("dnnlib", dnnlib), ("dnnlib.util", util)]:
        monkeypatch.setitem(sys.modules, name, module)

    class Persistent:
        """Pickles like an official persistent module: a call of _reconstruct_persistent_obj(meta)."""

        def __init__(self, class_name, state):
            self.class_name, self.state = class_name, state

        def __reduce__(self):
            src = f"open({str(marker)!r}, 'w').write('executed')\nclass {self.class_name}: pass\n"
            meta = dict(type="class", version=6, module_src=src, class_name=self.class_name, state=self.state)
            return _reconstruct_persistent_obj, (meta,)

    def wrap(module: torch.nn.Module):
        """The __dict__ of an nn.Module as the official pickles hold it: parameters, buffers, children, hooks and
        the plain attributes (floats as numpy scalars, as np.sqrt leaves them)."""
        state = {
            "training": False,
            "_parameters": OrderedDict(module._parameters),
            "_buffers": OrderedDict(module._buffers),
            "_non_persistent_buffers_set": set(),
            "_backward_hooks": OrderedDict(),
            "_forward_hooks": OrderedDict(),
            "_forward_pre_hooks": OrderedDict(),
            "_state_dict_hooks": OrderedDict(),
            "_load_state_dict_pre_hooks": OrderedDict(),
            "_modules": OrderedDict((k, wrap(v)) for k, v in module._modules.items()),
        }
        for k, v in vars(module).items():
            if not k.startswith("_") and (v is None or isinstance(v, (bool, int, str, list))):
                state[k] = v
            elif not k.startswith("_") and isinstance(v, float):
                state[k] = np.float64(v)
        if isinstance(module, Generator):
            state["_init_kwargs"] = EasyDict(z_dim=module.z_dim, mapping_kwargs=EasyDict(num_layers=2))
        return Persistent(type(module).__name__, state)

    return types.SimpleNamespace(wrap=wrap, marker=marker, EasyDict=EasyDict)


def _networks(seed: int = 0):
    torch.manual_seed(seed)
    G, D = Generator(TINY), Discriminator(TINY)
    with torch.no_grad():  # make every tensor matter: noise on, w_avg away from 0
        for module in G.modules():
            if hasattr(module, "noise_strength"):
                module.noise_strength.fill_(0.3)
        G.mapping.w_avg.normal_()
    G_ema = copy.deepcopy(G)
    with torch.no_grad():
        for p in G_ema.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return G, D, G_ema


def _write_pickle(path, official, G, D, G_ema, extra=None):
    data = {"G": official.wrap(G), "D": official.wrap(D), "G_ema": official.wrap(G_ema), "augment_pipe": None,
            "training_set_kwargs": official.EasyDict(resolution=32, use_labels=False)}
    data.update(extra or {})
    path.write_bytes(pickle.dumps(data, protocol=3))  # stylegan2-ada-pytorch used the default protocol of Python 3.7
    return path


def test_convert_gives_the_same_networks_and_runs_no_code(official, tmp_path):
    G, D, G_ema = _networks()
    src = _write_pickle(tmp_path / "network-snapshot.pkl", official, G, D, G_ema)
    dst, cfg = convert_pickle(src, tmp_path / "out" / "ffhq.safetensors", networks=("G_ema", "G", "D"))
    assert not official.marker.exists(), "the converter executed module_src"
    assert cfg == TINY  # shapes, fp16 / clamp attributes and the mbstd group all recovered
    G2 = Generator.from_safetensors(dst).eval()
    z = torch.randn(4, TINY.z_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        for kwargs in (dict(noise_mode="const"), dict(noise_mode="const", truncation_psi=0.7), dict(noise_mode="none")):
            assert torch.equal(G2(z, **kwargs), G_ema.eval()(z, **kwargs))
        img = G.eval()(z, noise_mode="const")
        assert torch.equal(Generator.from_safetensors(dst, network="G").eval()(z, noise_mode="const"), img)
        assert torch.equal(Discriminator.from_safetensors(dst)(img), D(img))
    # control: the same pickle through the ordinary unpickler does run the source
    pickle.loads(src.read_bytes())
    assert official.marker.exists()


def test_cli_converts_and_reports_refusals(official, tmp_path, capsys):
    G, D, G_ema = _networks()
    src = _write_pickle(tmp_path / "net.pkl", official, G, D, G_ema)
    assert cli_main(["convert-stylegan2", str(src), str(tmp_path / "g.safetensors")]) == 0
    assert sorted(os.listdir(tmp_path)) == ["g.safetensors", "net.pkl"]  # no temporary file left behind
    with pytest.raises(InputError, match="no 'D' network"):
        Discriminator.from_safetensors(tmp_path / "g.safetensors")
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"G_ema": _Reduce(eval, ("1 + 1",))}))
    assert cli_main(["convert-stylegan2", str(evil), str(tmp_path / "e.safetensors")]) == 2
    assert "builtins.eval" in capsys.readouterr().err
    assert not (tmp_path / "e.safetensors").exists()


class _Reduce:
    """Pickles as the call ``func(*args)``, the way every malicious pickle works."""

    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


@pytest.mark.parametrize(
    "payload,named",
    [
        (lambda m: _Reduce(os.system, (f"touch {m}",)), "system"),
        (lambda m: _Reduce(eval, (f"open({str(m)!r}, 'w')",)), "builtins.eval"),
        (lambda m: _Reduce(exec, (f"open({str(m)!r}, 'w')",)), "builtins.exec"),
        (lambda m: _Reduce(getattr, (_Reduce(__import__, ("os",)), "system")), "builtins.getattr"),
        (lambda m: _Reduce(__import__, ("os",)), "builtins.__import__"),
    ],
)
def test_malicious_globals_are_refused_before_running(tmp_path, payload, named):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"G_ema": payload(marker)}))
    with pytest.raises(UnsafePickleError, match=named):
        load_network_pickle(path)
    assert not marker.exists()


def test_payload_hidden_in_a_module_state_is_refused(official, tmp_path):
    G, D, G_ema = _networks()
    marker = tmp_path / "pwned"
    wrapped = official.wrap(G_ema)
    wrapped.state["_modules"]["mapping"].state["lr_note"] = _Reduce(os.system, (f"touch {marker}",))
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"G_ema": wrapped}, protocol=3))
    with pytest.raises(UnsafePickleError, match="system"):
        load_network_pickle(path)
    assert not marker.exists() and not official.marker.exists()


def test_payload_inside_a_tensor_storage_is_refused(tmp_path):
    """Storages are nested torch.save files, which torch's own loader would unpickle without restriction."""
    import torch.storage

    marker = tmp_path / "pwned"
    blob = pickle.dumps(_Reduce(os.system, (f"touch {marker}",)), protocol=2)
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"G_ema": _Reduce(torch.storage._load_from_bytes, (blob,))}))
    with pytest.raises(UnsafePickleError, match="weights-only"):
        load_network_pickle(path)
    assert not marker.exists()


def test_not_a_network_pickle_is_named(tmp_path):
    path = tmp_path / "plain.pkl"
    path.write_bytes(pickle.dumps({"a": [1, 2.0, "x"]}))
    with pytest.raises(InputError, match="holds no networks"):
        load_network_pickle(path)
    (tmp_path / "junk.pkl").write_bytes(b"not a pickle at all")
    with pytest.raises(InputError, match="not a readable network pickle"):
        load_network_pickle(tmp_path / "junk.pkl")
    with pytest.raises(InputError, match="does not exist"):
        load_network_pickle(tmp_path / "missing.pkl")


def test_wrong_architecture_is_refused(official, tmp_path):
    G, D, G_ema = _networks()
    wrapped = official.wrap(G_ema)
    del wrapped.state["_modules"]["synthesis"].state["_modules"]["b8"].state["_modules"]["torgb"]
    path = tmp_path / "odd.pkl"
    path.write_bytes(pickle.dumps({"G_ema": wrapped}, protocol=3))
    with pytest.raises(InputError, match="missing: synthesis.b8.torgb"):
        convert_pickle(path, tmp_path / "odd.safetensors")
    assert not (tmp_path / "odd.safetensors").exists()
