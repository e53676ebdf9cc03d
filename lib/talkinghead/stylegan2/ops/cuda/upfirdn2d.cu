// CUDA kernel of upfirdn2d: one thread per output pixel. Output pixel (oy, ox) reads the zero-inserted, padded input
// at rows oy * down + t - top (t = 0 .. fh - 1); only rows that are multiples of `up` hold input pixels, so the loop
// starts at the first such tap and steps by `up`, skipping the inserted zeros.
#include "upfirdn2d.h"
#include <ATen/AccumulateType.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>

namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ int64_t first_tap(int64_t start, int64_t up) {
    // smallest t >= 0 with (start + t) divisible by up and start + t >= 0
    int64_t t = start < 0 ? -start : 0;
    int64_t r = (start + t) % up;
    return r == 0 ? t : t + (up - r);
}

template <typename scalar_t>
__global__ void upfirdn2d_kernel(const scalar_t* __restrict__ x, const float* __restrict__ f, scalar_t* __restrict__ y,
                                 int64_t planes, int64_t in_h, int64_t in_w, int64_t out_h, int64_t out_w, int fh, int fw,
                                 int up, int down, int64_t left, int64_t top, bool flip_filter, double gain) {
    using acc_t = at::acc_type<scalar_t, true>;
    const int64_t n = planes * out_h * out_w;
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(blockDim.x) * gridDim.x) {
        const int64_t ox = i % out_w;
        const int64_t oy = (i / out_w) % out_h;
        const int64_t plane = i / (out_w * out_h);
        const scalar_t* src = x + plane * in_h * in_w;
        const int64_t sy = oy * down - top;  // row of the upsampled input under tap 0
        const int64_t sx = ox * down - left;
        acc_t acc = acc_t(0);
        for (int64_t ty = first_tap(sy, up); ty < fh; ty += up) {
            const int64_t iy = (sy + ty) / up;
            if (iy >= in_h) break;
            const int fy = flip_filter ? int(ty) : fh - 1 - int(ty);  // convolution reads the filter backwards
            for (int64_t tx = first_tap(sx, up); tx < fw; tx += up) {
                const int64_t ix = (sx + tx) / up;
                if (ix >= in_w) break;
                const int fx = flip_filter ? int(tx) : fw - 1 - int(tx);
                acc += static_cast<acc_t>(src[iy * in_w + ix]) * static_cast<acc_t>(f[fy * fw + fx]);
            }
        }
        y[i] = static_cast<scalar_t>(acc * static_cast<acc_t>(gain));
    }
}

}  // namespace

torch::Tensor upfirdn2d_cuda(torch::Tensor x, torch::Tensor f, int64_t up, int64_t down, int64_t left, int64_t right,
                             int64_t top, int64_t bottom, bool flip_filter, double gain) {
    const at::cuda::CUDAGuard guard(x.device());
    const int64_t in_h = x.size(2), in_w = x.size(3);
    const int fh = static_cast<int>(f.size(0)), fw = static_cast<int>(f.size(1));
    const int64_t out_h = (in_h * up + top + bottom - fh) / down + 1;
    const int64_t out_w = (in_w * up + left + right - fw) / down + 1;
    auto y = torch::empty({x.size(0), x.size(1), out_h, out_w}, x.options());
    const int64_t n = y.numel();
    if (n == 0) return y;
    const int64_t wanted = (n + kThreads - 1) / kThreads;
    const int blocks = static_cast<int>(wanted < 65535 * 8 ? wanted : 65535 * 8);
    auto stream = at::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES_AND_HALF(x.scalar_type(), "upfirdn2d_cuda", [&] {
        upfirdn2d_kernel<scalar_t><<<blocks, kThreads, 0, stream>>>(
            x.data_ptr<scalar_t>(), f.data_ptr<float>(), y.data_ptr<scalar_t>(), x.size(0) * x.size(1), in_h, in_w, out_h, out_w,
            fh, fw, static_cast<int>(up), static_cast<int>(down), left, top, flip_filter, gain);
    });
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    return y;
}
