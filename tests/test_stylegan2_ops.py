"""StyleGAN2 custom ops: the references against dense formulas, gradients to second order, and the CUDA path: its
autograd plumbing (driven on CPU by a Python stand-in for the kernels), the kernels' own source compiled for the CPU
and run thread by thread (tests/cuda_emulation.cpp), their build with nvcc where a CUDA torch is installed, and on a
GPU the real kernels."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import talkinghead.stylegan2.ops.bias_act as bias_act_module
import talkinghead.stylegan2.ops.upfirdn2d as upfirdn2d_module
from talkinghead.stylegan2.ops.bias_act import ACTIVATIONS, bias_act
from talkinghead.stylegan2.ops.conv2d_resample import conv2d_resample
from talkinghead.stylegan2.ops.upfirdn2d import downsample2d, setup_filter, upfirdn2d, upsample2d

torch.set_num_threads(1)
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def dense_upfirdn2d(x: np.ndarray, f: np.ndarray, up: int, down: int, pads, flip: bool, gain: float) -> np.ndarray:
    """The definition, pixel by pixel: zero insertion, padding, convolution with f (flipped taps), decimation."""
    left, right, top, bottom = pads
    n, c, h, w = x.shape
    u = np.zeros((n, c, h * up, w * up))
    u[:, :, ::up, ::up] = x
    padded = np.zeros((n, c, h * up + max(top, 0) + max(bottom, 0), w * up + max(left, 0) + max(right, 0)))
    padded[:, :, max(top, 0) : max(top, 0) + h * up, max(left, 0) : max(left, 0) + w * up] = u
    padded = padded[:, :, max(-top, 0) : padded.shape[2] - max(-bottom, 0), max(-left, 0) : padded.shape[3] - max(-right, 0)]
    g = f if flip else f[::-1, ::-1]
    fh, fw = f.shape
    out_h, out_w = (padded.shape[2] - fh) // down + 1, (padded.shape[3] - fw) // down + 1
    out = np.zeros((n, c, out_h, out_w))
    for oy in range(out_h):
        for ox in range(out_w):
            patch = padded[:, :, oy * down : oy * down + fh, ox * down : ox * down + fw]
            out[:, :, oy, ox] = (patch * g).sum(axis=(2, 3))
    return out * gain


@pytest.mark.parametrize(
    "up,down,pads,flip",
    [(1, 1, (0, 0, 0, 0), False), (2, 1, (2, 1, 2, 1), False), (1, 2, (1, 1, 1, 1), False), (3, 2, (1, -1, 2, 0), True), (2, 2, (-1, 3, 0, 1), False)],
)
def test_upfirdn2d_ref_matches_the_definition(up, down, pads, flip):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 5, 6, generator=gen, dtype=torch.float64)
    f = torch.randn(4, 3, generator=gen, dtype=torch.float64)  # asymmetric, non-square: catches flips and swaps
    y = upfirdn2d(x, f, up=up, down=down, padding=pads, flip_filter=flip, gain=1.5, impl="ref")
    want = dense_upfirdn2d(x.numpy(), f.numpy(), up, down, pads, flip, 1.5)
    np.testing.assert_allclose(y.numpy(), want, atol=1e-12)


def test_separable_filter_equals_its_outer_product():
    x = torch.randn(1, 2, 8, 8, dtype=torch.float64)
    taps = torch.tensor([1.0, 3, 3, 1], dtype=torch.float64)
    y1 = upfirdn2d(x, taps, up=2, padding=(2, 1, 2, 1), gain=4, impl="ref")
    y2 = upfirdn2d(x, torch.outer(taps, taps), up=2, padding=(2, 1, 2, 1), gain=4, impl="ref")
    torch.testing.assert_close(y1, y2)


def test_setup_filter_is_the_official_buffer():
    f = setup_filter([1, 3, 3, 1])
    assert f.shape == (4, 4) and f.dtype == torch.float32
    torch.testing.assert_close(f, torch.outer(torch.tensor([1.0, 3, 3, 1]), torch.tensor([1.0, 3, 3, 1])) / 64)
    assert setup_filter([1] * 8).shape == (8,)  # long filters stay separable


def test_resampling_keeps_constants_and_shapes():
    f = setup_filter([1, 3, 3, 1])
    ones = torch.ones(1, 1, 8, 8)
    up = upsample2d(ones, f, impl="ref")
    down = downsample2d(ones, f, impl="ref")
    assert up.shape == (1, 1, 16, 16) and down.shape == (1, 1, 4, 4)
    torch.testing.assert_close(up[..., 2:-2, 2:-2], torch.ones(1, 1, 12, 12))  # interior: the mean is kept
    torch.testing.assert_close(down[..., 1:-1, 1:-1], torch.ones(1, 1, 2, 2))


def full_kernel(w: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """(O, I, kh, kw) convolved (full, true convolution) with the filter: the combined kernel of conv + FIR."""
    from scipy.signal import convolve2d

    return torch.from_numpy(np.stack([[convolve2d(k, f.numpy()) for k in row] for row in w.numpy()]))


@pytest.mark.parametrize("up,down,k,flip", [(1, 1, 3, True), (2, 1, 3, False), (2, 1, 3, True), (1, 2, 3, True), (1, 2, 1, True)])
def test_conv2d_resample_matches_the_combined_kernel(up, down, k, flip):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 4, 8, 8, generator=gen, dtype=torch.float64)
    w = torch.randn(6, 4, k, k, generator=gen, dtype=torch.float64)
    f = setup_filter([1, 3, 3, 1]).double()
    y = conv2d_resample(x, w, f, up=up, down=down, padding=k // 2, flip_weight=flip, impl="ref")
    conv = torch.nn.functional.conv2d
    wc = w if flip else w.flip([2, 3])  # the kernel for a correlation
    if up > 1:
        # zeros inserted, then the full convolution with (kernel * filter), centred: output p reads full index p + 2
        u = torch.zeros(2, 4, 16, 16, dtype=torch.float64)
        u[:, :, ::2, ::2] = x
        kernel = full_kernel(wc.flip([2, 3]), f * 4)  # (6, 4, 6, 6), true-convolution taps
        want = conv(u, kernel.flip([2, 3]), padding=3)[:, :, :16, :16]
        # away from the borders this is also "upsample, then convolve"
        interior = conv(upsample2d(x, f, impl="ref"), wc, padding=k // 2)[:, :, 3:-3, 3:-3]
        torch.testing.assert_close(y[:, :, 3:-3, 3:-3], interior)
    elif down > 1:
        kernel = full_kernel(wc, f)  # filter then strided correlation = one strided correlation with the combination
        want = conv(x, kernel, stride=2, padding=(kernel.shape[-1] - 2) // 2)
        interior = downsample2d(conv(x, wc, padding=k // 2), f, impl="ref")[:, :, 1:-1, 1:-1]
        torch.testing.assert_close(y[:, :, 1:-1, 1:-1], interior)
    else:
        want = conv(x, wc, padding=k // 2)
    torch.testing.assert_close(y, want)
    # grouped: each group is its own convolution
    yg = conv2d_resample(x, w[:, :2], f, up=up, down=down, padding=k // 2, groups=2, flip_weight=flip, impl="ref")
    for g in range(2):
        part = conv2d_resample(x[:, 2 * g : 2 * g + 2], w[3 * g : 3 * g + 3, :2], f, up=up, down=down, padding=k // 2, flip_weight=flip, impl="ref")
        torch.testing.assert_close(yg[:, 3 * g : 3 * g + 3], part)


@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
def test_bias_act_ref_matches_the_formula(act):
    x = torch.randn(3, 4, 5, dtype=torch.float64)
    b = torch.randn(4, dtype=torch.float64)
    formulas = {
        "linear": lambda v: v,
        "relu": lambda v: v.clamp(min=0),
        "lrelu": lambda v: torch.where(v > 0, v, 0.2 * v),
        "tanh": torch.tanh,
        "sigmoid": lambda v: 1 / (1 + torch.exp(-v)),
        "elu": lambda v: torch.where(v > 0, v, torch.exp(v) - 1),
        "selu": lambda v: 1.0507009873554805 * torch.where(v > 0, v, 1.6732632423543772 * (torch.exp(v) - 1)),
        "softplus": lambda v: torch.log1p(torch.exp(v)),
        "swish": lambda v: v / (1 + torch.exp(-v)),
    }
    gain = {"relu": math.sqrt(2), "lrelu": math.sqrt(2), "swish": math.sqrt(2)}.get(act, 1.0)
    want = (formulas[act](x + b[None, :, None]) * gain).clamp(-0.7, 0.7)
    torch.testing.assert_close(bias_act(x, b, act=act, clamp=0.7, impl="ref"), want)
    torch.testing.assert_close(bias_act(x, None, dim=2, act=act, gain=3.0, impl="ref"), formulas[act](x) * 3.0)


def test_ref_ops_gradients_to_second_order():
    x = torch.randn(1, 2, 4, 5, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, dtype=torch.float64, requires_grad=True)
    f = setup_filter([1, 3, 3, 1]).double()
    assert torch.autograd.gradcheck(lambda v: upfirdn2d(v, f, up=2, down=1, padding=(2, 1, 1, 2), gain=4, impl="ref"), (x,))
    assert torch.autograd.gradgradcheck(lambda v: upfirdn2d(v, f, down=2, padding=1, impl="ref"), (x,))
    for act in ("lrelu", "tanh", "swish"):
        assert torch.autograd.gradcheck(lambda v, c: bias_act(v, c, act=act, clamp=1.5, impl="ref"), (x, b))
        assert torch.autograd.gradgradcheck(lambda v, c: bias_act(v, c, act=act, impl="ref"), (x, b))


def test_adjoint_of_upfirdn2d_is_its_gradient():
    """The CUDA backward runs upfirdn2d with the arguments of `_adjoint`; check them against autograd of the ref."""
    gen = torch.Generator().manual_seed(2)
    f = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    for up, down, pads, flip in [(2, 1, (2, 1, 2, 1), False), (1, 2, (1, 1, 1, 1), True), (3, 2, (1, -1, 2, 0), False)]:
        x = torch.randn(2, 3, 7, 6, generator=gen, dtype=torch.float64, requires_grad=True)
        y = upfirdn2d(x, f, up=up, down=down, padding=pads, flip_filter=flip, gain=2.0, impl="ref")
        dy = torch.randn_like(y)
        (dx,) = torch.autograd.grad(y, x, dy)
        a_up, a_down, a_pads, a_flip = upfirdn2d_module._adjoint(x.shape, y.shape, f.shape, up, down, pads, flip)
        torch.testing.assert_close(upfirdn2d(dy, f, up=a_up, down=a_down, padding=a_pads, flip_filter=a_flip, gain=2.0, impl="ref"), dx)


class _PythonKernels:
    """The kernels' contract in Python, so the CUDA path's autograd Functions run (and are checked) on CPU."""

    @staticmethod
    def upfirdn2d(x, f, up, down, left, right, top, bottom, flip_filter, gain):
        return upfirdn2d_module._upfirdn2d_ref(x, f, up, down, (left, right, top, bottom), flip_filter, gain)

    @staticmethod
    def bias_act_forward(x, b, dim, act, alpha, gain, clamp):
        if b.numel():
            x = x + b.reshape([-1 if i == dim else 1 for i in range(x.ndim)])
        x = torch.where(x > 0, x, x * alpha) if act else x
        x = x * gain
        return x.clamp(-clamp, clamp) if clamp >= 0 else x

    @staticmethod
    def bias_act_grad(dy, y, act, alpha, gain, clamp):
        g = dy * gain
        if y.numel():
            if act:
                g = torch.where(y > 0, g, g * alpha)
            if clamp >= 0:
                g = torch.where(y.abs() < clamp, g, torch.zeros_like(g))
        return g


def test_cuda_path_autograd_with_python_kernels(monkeypatch):
    kernels = _PythonKernels()
    monkeypatch.setattr(bias_act_module, "load_extension", lambda name, x: kernels)
    monkeypatch.setattr(upfirdn2d_module, "load_extension", lambda name, x: kernels)
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 4, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, generator=gen, dtype=torch.float64, requires_grad=True)
    f = setup_filter([1, 3, 3, 1]).double()
    for act, clamp in [("linear", None), ("lrelu", None), ("relu", 1.0)]:
        fused = bias_act(x, b, act=act, clamp=clamp)
        assert fused.grad_fn.__class__.__name__.startswith("_BiasActCuda")
        torch.testing.assert_close(fused, bias_act(x, b, act=act, clamp=clamp, impl="ref"))
        assert torch.autograd.gradcheck(lambda v, c: bias_act(v, c, act=act, clamp=clamp), (x, b))
        assert torch.autograd.gradgradcheck(lambda v, c: bias_act(v, c, act=act, clamp=clamp), (x, b))
    for kwargs in [dict(up=2, padding=(2, 1, 2, 1), gain=4), dict(down=2, padding=1), dict(up=3, down=2, padding=(1, -1, 2, 0))]:
        fused = upfirdn2d(x, f, **kwargs)
        assert fused.grad_fn.__class__.__name__.startswith("_UpFirDn2dCuda")
        torch.testing.assert_close(fused, upfirdn2d(x, f, impl="ref", **kwargs))
        assert torch.autograd.gradcheck(lambda v: upfirdn2d(v, f, **kwargs), (x,))
        assert torch.autograd.gradgradcheck(lambda v: upfirdn2d(v, f, **kwargs), (x,))


def _second_order(gx, gb, inputs):
    """Gradients of |gx|² + |gb|² with respect to the inputs (zeros where the first gradients are constants, as for a
    linear activation)."""
    total = gx.square().sum() + gb.square().sum()
    if not total.requires_grad:
        return tuple(torch.zeros_like(t) for t in inputs)
    return torch.autograd.grad(total, inputs, allow_unused=True, materialize_grads=True)


class _EmulatedKernels:
    """The real kernels (``ops/cuda/*.cuh``) compiled for the CPU by ``tests/cuda_emulation.cpp``, launched on the
    launchers' own grid (``grid`` None: 256 threads a block) or on a small one where every thread strides over
    several elements; the asserts are the argument checks of ``bias_act.cpp`` / ``upfirdn2d.cpp``."""

    def __init__(self, module, grid: tuple[int, int] | None):
        self.module, self.grid = module, grid or (0, 0)

    def bias_act_forward(self, x, b, dim, act, alpha, gain, clamp):
        assert x.is_contiguous() and b.is_contiguous()
        return self.module.bias_act_forward(x, b, dim, act, alpha, gain, clamp, *self.grid)

    def bias_act_grad(self, dy, y, act, alpha, gain, clamp):
        assert dy.is_contiguous() and y.is_contiguous()
        return self.module.bias_act_grad(dy, y, act, alpha, gain, clamp, *self.grid)

    def upfirdn2d(self, x, f, up, down, left, right, top, bottom, flip_filter, gain):
        assert x.is_contiguous() and f.is_contiguous() and f.dtype == torch.float32 and f.ndim == 2
        return self.module.upfirdn2d(x, f, up, down, left, right, top, bottom, flip_filter, gain, *self.grid)


@pytest.fixture(scope="module")
def emulated_kernels(tmp_path_factory):
    import shutil
    from pathlib import Path

    from torch.utils.cpp_extension import load

    from talkinghead.stylegan2.ops._build import SOURCE_DIR

    if shutil.which("c++") is None:
        pytest.skip("needs a C++ compiler to build the CPU emulation of the CUDA kernels")
    return load(name="talkinghead_cuda_emulation", sources=[str(Path(__file__).with_name("cuda_emulation.cpp"))],
                extra_include_paths=[str(SOURCE_DIR)], extra_cflags=["-O1"],
                build_directory=str(tmp_path_factory.mktemp("cuda_emulation")))


@pytest.mark.parametrize("grid", [None, (3, 4)], ids=["launch grid", "strided grid"])
def test_cuda_kernel_sources_match_the_reference_on_cpu(monkeypatch, emulated_kernels, grid):
    """The kernels' own source, run thread by thread on the CPU through the CUDA path's autograd Functions: forward,
    backward and double backward equal the reference (float64 to rounding, float32 to float32 precision)."""
    kernels = _EmulatedKernels(emulated_kernels, grid)
    monkeypatch.setattr(bias_act_module, "load_extension", lambda name, x: kernels)
    monkeypatch.setattr(upfirdn2d_module, "load_extension", lambda name, x: kernels)
    f = setup_filter([1, 3, 3, 1])
    cases = [
        lambda v, c, impl: bias_act(v, c, act="lrelu", clamp=0.8, impl=impl),
        lambda v, c, impl: bias_act(v.transpose(2, 3), c, act="relu", gain=1.5, impl=impl),    # a non-contiguous x
        lambda v, c, impl: bias_act(v, c[:3, None].expand(3, 5).reshape(-1)[:5], dim=3, act="linear", gain=2.0, impl=impl),
        lambda v, c, impl: bias_act(v, None, act="lrelu", impl=impl),
        lambda v, c, impl: upsample2d(v, f, impl=impl) * c[:, None, None],
        lambda v, c, impl: downsample2d(v, f, impl=impl) * c[:, None, None],
        lambda v, c, impl: upfirdn2d(v, f, up=3, down=2, padding=(1, -1, 2, 0), flip_filter=True, gain=3.0, impl=impl) * c[:, None, None],
        lambda v, c, impl: upfirdn2d(v, torch.tensor([[1.0, -2.0, 0.5], [0.25, 1.0, 3.0]]), up=2, down=3, padding=(-1, 2, 0, 1), impl=impl),
    ]
    for dtype, tol in [(torch.float64, 1e-10), (torch.float32, 1e-5)]:
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(2, 3, 6, 5, generator=gen, dtype=dtype, requires_grad=True)
        b = torch.randn(3, generator=gen, dtype=dtype, requires_grad=True)
        for k, op in enumerate(cases):
            outs = {}
            for impl in ("cuda", "ref"):
                y = op(x, b, impl)
                if impl == "cuda":
                    assert "Cuda" in type(y.grad_fn).__name__ or any("Cuda" in type(g[0]).__name__ for g in y.grad_fn.next_functions if g[0])
                dy = torch.randn(y.shape, generator=torch.Generator().manual_seed(1), dtype=dtype)
                gx, gb = torch.autograd.grad(y, (x, b), dy, create_graph=True, allow_unused=True, materialize_grads=True)
                outs[impl] = (y, gx, gb, *_second_order(gx, gb, (x, b)))
            for got, want in zip(outs["cuda"], outs["ref"]):
                torch.testing.assert_close(got, want, atol=tol, rtol=tol, msg=lambda m: f"case {k}, {dtype}: {m}")


def test_env_var_forces_the_reference_silently(monkeypatch):
    import warnings

    from talkinghead.stylegan2.ops import _build

    x = torch.zeros(2)
    monkeypatch.setattr(_build, "_warned", False)
    monkeypatch.setenv("TALKINGHEAD_STYLEGAN2_REF", "1")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert _build.load_extension("bias_act", x) is None
    assert not caught
    monkeypatch.delenv("TALKINGHEAD_STYLEGAN2_REF")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert _build.load_extension("bias_act", x) is None and _build.load_extension("upfirdn2d", x) is None
    assert len(caught) == 1 and "reference" in str(caught[0].message)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="unknown activation"):
        bias_act(torch.zeros(1, 2), act="gelu2")
    with pytest.raises(ValueError, match="bias of shape"):
        bias_act(torch.zeros(1, 2), torch.zeros(3), impl="ref")
    with pytest.raises(ValueError, match="impl"):
        upfirdn2d(torch.zeros(1, 1, 4, 4), None, impl="triton")


def test_build_ops_on_a_cpu_build_of_torch_says_what_to_install(capsys):
    from talkinghead.cli import main

    if torch.version.cuda is not None:
        pytest.skip("this torch is a CUDA build")
    assert main(["build-ops", "--arch", "9.0"]) == 2
    err = capsys.readouterr().err
    assert "CPU build" in err and "install a CUDA build of torch" in err


def test_build_ops_reports_a_failed_build_with_the_fix(monkeypatch, capsys):
    from talkinghead.cli import main
    from talkinghead.stylegan2.ops import _build

    def broken(**kwargs):
        raise RuntimeError("Error building extension 'talkinghead_upfirdn2d': nvcc fatal : Unsupported gpu architecture")

    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(_build, "check_build", broken)
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "")                   # build-ops sets it: restored after the test
    assert main(["build-ops", "--arch", "9.0"]) == 1
    err = capsys.readouterr().err
    assert "did not build" in err and "Unsupported gpu architecture" in err and "--verbose" in err


@pytest.mark.skipif(torch.version.cuda is None or not __import__("shutil").which("nvcc"),
                    reason="needs a CUDA build of torch and nvcc (no GPU needed)")
def test_kernels_build_link_and_load(monkeypatch, tmp_path):
    """What ``python -m talkinghead build-ops`` checks: both ops compile with nvcc, link against this torch and
    load; their bindings run the argument checks of ``*.cpp`` (CPU tensors are refused by name)."""
    from talkinghead.stylegan2.ops import _build

    monkeypatch.setenv("TALKINGHEAD_CACHE", str(tmp_path))
    if not torch.cuda.is_available():
        monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "9.0")
    report = _build.check_build()
    assert set(report) == set(_build.OPS)
    assert "must be a CUDA tensor" in report["bias_act"]["refusal"]
    assert "must be CUDA tensors" in report["upfirdn2d"]["refusal"]


# --------------------------------------------------------------------------- GPU only


@cuda
@pytest.mark.cuda
def test_cuda_kernels_match_the_reference_forward_and_backward():
    gen = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(4, 8, 16, 16, device="cuda", generator=gen, requires_grad=True)
    b = torch.randn(8, device="cuda", generator=gen, requires_grad=True)
    f = setup_filter([1, 3, 3, 1]).cuda()
    cases = [
        lambda v, c, impl: bias_act(v, c, act="lrelu", clamp=1.0, impl=impl),
        lambda v, c, impl: bias_act(v, c, act="linear", gain=2.0, impl=impl),
        lambda v, c, impl: upsample2d(v, f, impl=impl) * c[:, None, None],
        lambda v, c, impl: downsample2d(v, f, impl=impl) * c[:, None, None],
        lambda v, c, impl: upfirdn2d(v, f, up=3, down=2, padding=(1, -1, 2, 0), impl=impl) * c[:, None, None],
    ]
    for op in cases:
        outs = {}
        for impl in ("cuda", "ref"):
            y = op(x, b, impl)
            dy = torch.randn(y.shape, device="cuda", generator=torch.Generator(device="cuda").manual_seed(1))
            gx, gb = torch.autograd.grad(y, (x, b), dy, create_graph=True)
            outs[impl] = (y, gx, gb, *_second_order(gx, gb, (x, b)))
        for got, want in zip(outs["cuda"], outs["ref"]):
            torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


@cuda
@pytest.mark.cuda
def test_benchmark_generator_fused_vs_reference():
    """The issue's benchmark: G ffhq256 forward + backward at batch 32, fused ops vs the reference."""
    from talkinghead.stylegan2.bench import bench_generator
    from talkinghead.stylegan2.networks import Config, Generator

    G = Generator(Config.preset("ffhq256")).cuda()
    rows = {impl: bench_generator(G, batch=32, impl=impl, backward=True, repeats=4) for impl in ("fused", "ref")}
    print(f"\nStyleGAN2 G ffhq256 forward+backward, batch 32, {torch.cuda.get_device_name()}: "
          f"fused {rows['fused']['seconds_per_batch'] * 1000:.1f} ms, reference {rows['ref']['seconds_per_batch'] * 1000:.1f} ms")
    assert all(r["images_per_s"] > 0 for r in rows.values())


def test_bench_counts_flops_and_times_the_reference(capsys):
    """FLOPs from torch's counter grow with the resolution as the conv work does; the bench times the reference and
    restores the environment it changed; the command prints one row per preset."""
    import os

    from talkinghead.cli import main
    from talkinghead.stylegan2.bench import bench_generator, forward_flops
    from talkinghead.stylegan2.networks import Config, Generator

    torch.manual_seed(0)
    tiny = Generator(Config.preset("tiny"))
    tiny64 = Generator(Config.preset("tiny", img_resolution=64))
    f32, f64 = forward_flops(tiny), forward_flops(tiny64)
    assert f32 > 0 and f64 > 1.5 * f32                               # one more block, at 4x the pixels
    assert forward_flops(tiny, batch=3) == pytest.approx(f32)        # per image
    before = os.environ.get("TALKINGHEAD_STYLEGAN2_REF")
    row = bench_generator(tiny, batch=2, impl="ref", backward=True, warmup=1, repeats=1)
    assert row["images_per_s"] > 0 and row["backward"] and os.environ.get("TALKINGHEAD_STYLEGAN2_REF") == before
    with pytest.raises(ValueError, match="'fused' or 'ref'"):
        bench_generator(tiny, batch=1, impl="cuda")
    assert main(["bench", "stylegan2", "--presets", "tiny", "--batch", "2", "--repeats", "1", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "| tiny | 32 | 2 | ref |" in out and "no peak figure for a CPU" in out
