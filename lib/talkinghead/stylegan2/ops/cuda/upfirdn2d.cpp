// Python binding and argument checks of the upfirdn2d kernel.
#include "upfirdn2d.h"

static torch::Tensor upfirdn2d(torch::Tensor x, torch::Tensor f, int64_t up, int64_t down, int64_t left, int64_t right,
                               int64_t top, int64_t bottom, bool flip_filter, double gain) {
    TORCH_CHECK(x.is_cuda() && f.is_cuda(), "x and f must be CUDA tensors");
    TORCH_CHECK(x.device() == f.device(), "x and f must be on the same device");
    TORCH_CHECK(x.dim() == 4 && x.is_contiguous(), "x must be a contiguous (N, C, H, W) tensor");
    TORCH_CHECK(f.dim() == 2 && f.is_contiguous() && f.scalar_type() == torch::kFloat, "f must be a contiguous float32 (fh, fw) tensor");
    TORCH_CHECK(up >= 1 && down >= 1, "up and down must be at least 1");
    const int64_t out_h = (x.size(2) * up + top + bottom - f.size(0)) / down + 1;
    const int64_t out_w = (x.size(3) * up + left + right - f.size(1)) / down + 1;
    TORCH_CHECK(x.size(2) * up + top + bottom >= f.size(0) && x.size(3) * up + left + right >= f.size(1) && out_h >= 1 && out_w >= 1,
                "upfirdn2d: the padded input is smaller than the filter");
    return upfirdn2d_cuda(x, f, up, down, left, right, top, bottom, flip_filter, gain);
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.def("upfirdn2d", &upfirdn2d, "upsample, pad, FIR filter, downsample");
}
