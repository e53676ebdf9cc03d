// Python bindings and argument checks of the bias_act kernels.
#include "bias_act.h"

static void check_input(const torch::Tensor& t, const char* name) {
    TORCH_CHECK(t.is_cuda(), name, " must be a CUDA tensor");
    TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
}

static torch::Tensor bias_act_forward(torch::Tensor x, torch::Tensor b, int64_t dim, int64_t act, double alpha, double gain, double clamp) {
    check_input(x, "x");
    TORCH_CHECK(dim >= 0 && dim < x.dim(), "dim out of range");
    TORCH_CHECK(act >= 0 && act <= 2, "act must be 0 (linear), 1 (relu) or 2 (lrelu)");
    if (b.numel() > 0) {
        check_input(b, "b");
        TORCH_CHECK(b.dim() == 1 && b.size(0) == x.size(dim), "b must have shape (x.size(dim),)");
        TORCH_CHECK(b.scalar_type() == x.scalar_type(), "b must have the dtype of x");
        TORCH_CHECK(b.device() == x.device(), "b must be on the device of x");
    }
    return bias_act_forward_cuda(x, b, dim, act, alpha, gain, clamp);
}

static torch::Tensor bias_act_grad(torch::Tensor dy, torch::Tensor y, int64_t act, double alpha, double gain, double clamp) {
    check_input(dy, "dy");
    if (y.numel() > 0) {
        check_input(y, "y");
        TORCH_CHECK(y.sizes() == dy.sizes(), "y must have the shape of dy");
        TORCH_CHECK(y.scalar_type() == dy.scalar_type(), "y must have the dtype of dy");
    }
    return bias_act_grad_cuda(dy, y, act, alpha, gain, clamp);
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.def("bias_act_forward", &bias_act_forward, "y = clamp(act(x + b) * gain)");
    m.def("bias_act_grad", &bias_act_grad, "dx of bias_act given dy and the forward output y");
}
