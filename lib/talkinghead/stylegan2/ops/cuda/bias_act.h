// Fused bias + piecewise-linear activation + gain + clamp (talkinghead.stylegan2.ops.bias_act).
#pragma once
#include <torch/extension.h>

// y = clamp(act(x + b) * gain, -clamp, clamp); act 0 = linear, 1 = relu, 2 = lrelu (slope alpha below 0).
// b: (x.size(dim),) or empty for no bias. clamp < 0: no clamp.
torch::Tensor bias_act_forward_cuda(torch::Tensor x, torch::Tensor b, int64_t dim, int64_t act, double alpha, double gain, double clamp);

// dx = dy * gain * slope(y) * [|y| < clamp], y the forward output (empty: linear without clamp).
torch::Tensor bias_act_grad_cuda(torch::Tensor dy, torch::Tensor y, int64_t act, double alpha, double gain, double clamp);
