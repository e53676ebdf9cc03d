// Launcher of the upfirdn2d kernel (upfirdn2d.cuh).
#include "upfirdn2d.h"
#include "upfirdn2d.cuh"
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>

namespace {

constexpr int kThreads = 256;

}  // namespace

torch::Tensor upfirdn2d_cuda(torch::Tensor x, torch::Tensor f, int64_t up, int64_t down, int64_t left, int64_t right,
                             int64_t top, int64_t bottom, bool flip_filter, double gain) {
    const c10::cuda::CUDAGuard guard(x.device());
    const int64_t in_h = x.size(2), in_w = x.size(3);
    const int fh = static_cast<int>(f.size(0)), fw = static_cast<int>(f.size(1));
    const int64_t out_h = (in_h * up + top + bottom - fh) / down + 1;
    const int64_t out_w = (in_w * up + left + right - fw) / down + 1;
    auto y = torch::empty({x.size(0), x.size(1), out_h, out_w}, x.options());
    const int64_t n = y.numel();
    if (n == 0) return y;
    const int64_t wanted = (n + kThreads - 1) / kThreads;
    const int blocks = static_cast<int>(wanted < 65535 * 8 ? wanted : 65535 * 8);
    auto stream = c10::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES_AND_HALF(x.scalar_type(), "upfirdn2d_cuda", [&] {
        talkinghead::upfirdn2d_kernel<scalar_t><<<blocks, kThreads, 0, stream>>>(
            x.data_ptr<scalar_t>(), f.data_ptr<float>(), y.data_ptr<scalar_t>(), x.size(0) * x.size(1), in_h, in_w, out_h, out_w,
            fh, fw, static_cast<int>(up), static_cast<int>(down), left, top, flip_filter, gain);
    });
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    return y;
}
