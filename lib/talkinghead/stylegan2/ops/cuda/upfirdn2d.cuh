// The upfirdn2d kernel (device code only, no CUDA headers), included by upfirdn2d.cu and, compiled as host code
// one thread at a time, by the CPU emulation in tests/test_stylegan2_ops.py that checks it against the reference.
// One thread per output pixel. Output pixel (oy, ox) reads the zero-inserted, padded input at rows
// oy * down + t - top (t = 0 .. fh - 1); only rows that are multiples of `up` hold input pixels, so the loop starts
// at the first such tap and steps by `up`, skipping the inserted zeros.
#pragma once
#include <ATen/AccumulateType.h>

namespace talkinghead {

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

}  // namespace talkinghead
