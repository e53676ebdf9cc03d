// Launchers of the bias_act kernels (bias_act.cuh).
#include "bias_act.h"
#include "bias_act.cuh"
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>

namespace {

constexpr int kThreads = 256;

int num_blocks(int64_t n) {
    int64_t blocks = (n + kThreads - 1) / kThreads;
    return static_cast<int>(blocks < 65535 * 8 ? (blocks > 0 ? blocks : 1) : 65535 * 8);
}

}  // namespace

torch::Tensor bias_act_forward_cuda(torch::Tensor x, torch::Tensor b, int64_t dim, int64_t act, double alpha, double gain, double clamp) {
    const c10::cuda::CUDAGuard guard(x.device());
    auto y = torch::empty_like(x);
    const int64_t n = x.numel();
    if (n == 0) return y;
    int64_t inner = 1;
    for (int64_t d = dim + 1; d < x.dim(); ++d) inner *= x.size(d);
    const int64_t channels = x.size(dim);
    const bool has_bias = b.numel() > 0;
    auto stream = c10::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES_AND_HALF(x.scalar_type(), "bias_act_forward_cuda", [&] {
        talkinghead::forward_kernel<scalar_t><<<num_blocks(n), kThreads, 0, stream>>>(
            x.data_ptr<scalar_t>(), has_bias ? b.data_ptr<scalar_t>() : nullptr, y.data_ptr<scalar_t>(), n, inner, channels,
            static_cast<int>(act), alpha, gain, clamp);
    });
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    return y;
}

torch::Tensor bias_act_grad_cuda(torch::Tensor dy, torch::Tensor y, int64_t act, double alpha, double gain, double clamp) {
    const c10::cuda::CUDAGuard guard(dy.device());
    auto dx = torch::empty_like(dy);
    const int64_t n = dy.numel();
    if (n == 0) return dx;
    const bool has_y = y.numel() > 0;
    auto stream = c10::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES_AND_HALF(dy.scalar_type(), "bias_act_grad_cuda", [&] {
        talkinghead::grad_kernel<scalar_t><<<num_blocks(n), kThreads, 0, stream>>>(
            dy.data_ptr<scalar_t>(), has_y ? y.data_ptr<scalar_t>() : nullptr, dx.data_ptr<scalar_t>(), n,
            static_cast<int>(act), alpha, gain, clamp);
    });
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    return dx;
}
