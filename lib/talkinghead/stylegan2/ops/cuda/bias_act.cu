// CUDA kernels of bias_act: one thread per element, grid-stride loops, arithmetic in float (double for double).
#include "bias_act.h"
#include <ATen/AccumulateType.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>

namespace {

constexpr int kThreads = 256;

int num_blocks(int64_t n) {
    int64_t blocks = (n + kThreads - 1) / kThreads;
    return static_cast<int>(blocks < 65535 * 8 ? (blocks > 0 ? blocks : 1) : 65535 * 8);
}

template <typename scalar_t>
__global__ void forward_kernel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ b, scalar_t* __restrict__ y,
                               int64_t n, int64_t inner, int64_t channels, int act, double alpha, double gain, double clamp) {
    using acc_t = at::acc_type<scalar_t, true>;
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(blockDim.x) * gridDim.x) {
        acc_t v = static_cast<acc_t>(x[i]);
        if (b != nullptr) v += static_cast<acc_t>(b[(i / inner) % channels]);
        if (act != 0 && !(v > acc_t(0))) v *= static_cast<acc_t>(alpha);  // relu passes alpha = 0
        v *= static_cast<acc_t>(gain);
        if (clamp >= 0.0) v = v > acc_t(clamp) ? acc_t(clamp) : (v < acc_t(-clamp) ? acc_t(-clamp) : v);
        y[i] = static_cast<scalar_t>(v);
    }
}

template <typename scalar_t>
__global__ void grad_kernel(const scalar_t* __restrict__ dy, const scalar_t* __restrict__ y, scalar_t* __restrict__ dx,
                            int64_t n, int act, double alpha, double gain, double clamp) {
    using acc_t = at::acc_type<scalar_t, true>;
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(blockDim.x) * gridDim.x) {
        acc_t g = static_cast<acc_t>(dy[i]) * static_cast<acc_t>(gain);
        if (y != nullptr) {
            acc_t yv = static_cast<acc_t>(y[i]);
            if (act != 0 && !(yv > acc_t(0))) g *= static_cast<acc_t>(alpha);  // gain > 0: y > 0 exactly where x + b > 0
            if (clamp >= 0.0 && !(yv < acc_t(clamp) && yv > acc_t(-clamp))) g = acc_t(0);
        }
        dx[i] = static_cast<scalar_t>(g);
    }
}

}  // namespace

torch::Tensor bias_act_forward_cuda(torch::Tensor x, torch::Tensor b, int64_t dim, int64_t act, double alpha, double gain, double clamp) {
    const at::cuda::CUDAGuard guard(x.device());
    auto y = torch::empty_like(x);
    const int64_t n = x.numel();
    if (n == 0) return y;
    int64_t inner = 1;
    for (int64_t d = dim + 1; d < x.dim(); ++d) inner *= x.size(d);
    const int64_t channels = x.size(dim);
    const bool has_bias = b.numel() > 0;
    auto stream = at::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES_AND_HALF(x.scalar_type(), "bias_act_forward_cuda", [&] {
        forward_kernel<scalar_t><<<num_blocks(n), kThreads, 0, stream>>>(
            x.data_ptr<scalar_t>(), has_bias ? b.data_ptr<scalar_t>() : nullptr, y.data_ptr<scalar_t>(), n, inner, channels,
            static_cast<int>(act), alpha, gain, clamp);
    });
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    return y;
}

torch::Tensor bias_act_grad_cuda(torch::Tensor dy, torch::Tensor y, int64_t act, double alpha, double gain, double clamp) {
    const at::cuda::CUDAGuard guard(dy.device());
    auto dx = torch::empty_like(dy);
    const int64_t n = dy.numel();
    if (n == 0) return dx;
    const bool has_y = y.numel() > 0;
    auto stream = at::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES_AND_HALF(dy.scalar_type(), "bias_act_grad_cuda", [&] {
        grad_kernel<scalar_t><<<num_blocks(n), kThreads, 0, stream>>>(
            dy.data_ptr<scalar_t>(), has_y ? y.data_ptr<scalar_t>() : nullptr, dx.data_ptr<scalar_t>(), n,
            static_cast<int>(act), alpha, gain, clamp);
    });
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    return dx;
}
