// The StyleGAN2 CUDA kernels (lib/talkinghead/stylegan2/ops/cuda/*.cuh) compiled as host code and run on the CPU,
// one thread after another, for tests/test_stylegan2_ops.py. Every thread of these kernels writes only its own
// outputs, so running the threads of a launch in sequence computes what the GPU computes (up to the order of
// float operations, which is the same within a thread). The grid is given by the caller: the launchers' own
// (kThreads = 256 per block) or a small one that makes each thread stride over several elements.
#include <torch/extension.h>

#include <algorithm>

struct EmulatedDim3 {
    unsigned int x = 1;
};
static EmulatedDim3 blockIdx, threadIdx, blockDim, gridDim;

#define __global__
#define __device__
#define __forceinline__ inline

#include "bias_act.cuh"
#include "upfirdn2d.cuh"

// blocks <= 0: the launchers' own grid for n elements (num_blocks() in bias_act.cu, the same in upfirdn2d.cu).
template <typename Kernel>
static void launch(int64_t n, int64_t blocks, int64_t threads, Kernel kernel) {
    if (blocks <= 0) {
        threads = 256;
        blocks = std::max<int64_t>(1, std::min<int64_t>((n + threads - 1) / threads, 65535 * 8));
    }
    gridDim.x = static_cast<unsigned int>(blocks);
    blockDim.x = static_cast<unsigned int>(threads);
    for (int64_t b = 0; b < blocks; ++b) {
        blockIdx.x = static_cast<unsigned int>(b);
        for (int64_t t = 0; t < threads; ++t) {
            threadIdx.x = static_cast<unsigned int>(t);
            kernel();
        }
    }
}

// The arguments the launchers in bias_act.cu / upfirdn2d.cu pass, on CPU tensors; then the grid (0, 0: theirs).
static torch::Tensor bias_act_forward(torch::Tensor x, torch::Tensor b, int64_t dim, int64_t act, double alpha, double gain,
                                      double clamp, int64_t blocks, int64_t threads) {
    auto y = torch::empty_like(x);
    int64_t inner = 1;
    for (int64_t d = dim + 1; d < x.dim(); ++d) inner *= x.size(d);
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "bias_act_forward_emulated", [&] {
        const scalar_t* bp = b.numel() > 0 ? b.data_ptr<scalar_t>() : nullptr;
        launch(x.numel(), blocks, threads, [&] {
            talkinghead::forward_kernel<scalar_t>(x.data_ptr<scalar_t>(), bp, y.data_ptr<scalar_t>(), x.numel(), inner,
                                                  x.size(dim), static_cast<int>(act), alpha, gain, clamp);
        });
    });
    return y;
}

static torch::Tensor bias_act_grad(torch::Tensor dy, torch::Tensor y, int64_t act, double alpha, double gain, double clamp,
                                   int64_t blocks, int64_t threads) {
    auto dx = torch::empty_like(dy);
    AT_DISPATCH_FLOATING_TYPES(dy.scalar_type(), "bias_act_grad_emulated", [&] {
        const scalar_t* yp = y.numel() > 0 ? y.data_ptr<scalar_t>() : nullptr;
        launch(dy.numel(), blocks, threads, [&] {
            talkinghead::grad_kernel<scalar_t>(dy.data_ptr<scalar_t>(), yp, dx.data_ptr<scalar_t>(), dy.numel(),
                                               static_cast<int>(act), alpha, gain, clamp);
        });
    });
    return dx;
}

static torch::Tensor upfirdn2d(torch::Tensor x, torch::Tensor f, int64_t up, int64_t down, int64_t left, int64_t right,
                               int64_t top, int64_t bottom, bool flip_filter, double gain, int64_t blocks, int64_t threads) {
    const int64_t in_h = x.size(2), in_w = x.size(3);
    const int fh = static_cast<int>(f.size(0)), fw = static_cast<int>(f.size(1));
    const int64_t out_h = (in_h * up + top + bottom - fh) / down + 1;
    const int64_t out_w = (in_w * up + left + right - fw) / down + 1;
    auto y = torch::empty({x.size(0), x.size(1), out_h, out_w}, x.options());
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "upfirdn2d_emulated", [&] {
        launch(y.numel(), blocks, threads, [&] {
            talkinghead::upfirdn2d_kernel<scalar_t>(x.data_ptr<scalar_t>(), f.data_ptr<float>(), y.data_ptr<scalar_t>(),
                                                    x.size(0) * x.size(1), in_h, in_w, out_h, out_w, fh, fw,
                                                    static_cast<int>(up), static_cast<int>(down), left, top, flip_filter, gain);
        });
    });
    return y;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.def("bias_act_forward", &bias_act_forward);
    m.def("bias_act_grad", &bias_act_grad);
    m.def("upfirdn2d", &upfirdn2d);
}
