// The bias_act kernels (device code only, no CUDA headers), included by bias_act.cu and, compiled as host code
// one thread at a time, by the CPU emulation in tests/test_stylegan2_ops.py that checks them against the reference.
// One thread per element, grid-stride loops, arithmetic in float (double for double).
#pragma once
#include <ATen/AccumulateType.h>

namespace talkinghead {

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

}  // namespace talkinghead
