// Upsample by zero insertion, pad, FIR filter, downsample (talkinghead.stylegan2.ops.upfirdn2d).
#pragma once
#include <torch/extension.h>

// x: (N, C, H, W); f: (fh, fw) float32. Output (N, C, (H*up + top + bottom - fh) / down + 1, (W*up + left + right - fw) / down + 1).
// flip_filter false: true convolution with f; true: correlation. Every tap is multiplied by gain.
torch::Tensor upfirdn2d_cuda(torch::Tensor x, torch::Tensor f, int64_t up, int64_t down, int64_t left, int64_t right,
                             int64_t top, int64_t bottom, bool flip_filter, double gain);
