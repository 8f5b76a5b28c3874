// Visible-only Adam on the CPU, fused into one pass per parameter (C++17, OpenMP).
//
// Twin of splat/train/adam.py::GaussianAdam._update (the PyTorch path): the same per-row step
// counts and bias corrections, the same float32 formulas in the same order, but one read and one
// write of each row instead of the torch path's gathers, masks and temporaries. Rows are
// independent, so the result does not depend on the thread count.

#include <torch/extension.h>
#include <omp.h>

#include <cmath>
#include <algorithm>
#include <cstdint>

namespace splat_adam {

// One Adam step, in place, on the rows i of a (N, D) float32 parameter with visible[i] != 0 (every
// row when `visible` is empty): steps[i] += 1, then with s = steps[i]
//   m = m + (1 - b1) (g - m) (one fma, as torch.lerp);  v = b2 v + (1 - b2) g g
//   p = p + (-lr / bias1[s]) m / (sqrt(v) / bias2[s] + eps)
// bias1[s] = 1 - b1^s and bias2[s] = sqrt(1 - b2^s) are float64 tables indexed by step count.
// rescale_cap > 0 multiplies the step size by min(rescale_cap, sqrt(global_step / s)) (visibility
// rescaling, see adam.py); 0 leaves it as above.
void step(torch::Tensor param, torch::Tensor grad, torch::Tensor exp_avg, torch::Tensor exp_avg_sq,
          torch::Tensor steps, torch::Tensor visible, torch::Tensor bias1, torch::Tensor bias2, double lr,
          double beta1, double beta2, double eps, int64_t threads, int64_t global_step, double rescale_cap) {
  for (auto* t : {&param, &grad, &exp_avg, &exp_avg_sq}) {
    TORCH_CHECK(t->device().is_cpu() && t->scalar_type() == torch::kFloat32 && t->is_contiguous(),
                "adam_step: parameter, grad and moments must be contiguous float32 CPU tensors");
    TORCH_CHECK(t->numel() == param.numel(), "adam_step: parameter, grad and moments differ in size");
  }
  const int64_t n = steps.numel();
  TORCH_CHECK(steps.scalar_type() == torch::kInt64 && steps.is_contiguous(), "adam_step: steps (N,) int64");
  TORCH_CHECK(n > 0 && param.numel() % n == 0, "adam_step: parameter rows do not match steps (N,)");
  const bool all_rows = visible.numel() == 0;
  TORCH_CHECK(all_rows || (visible.numel() == n && visible.scalar_type() == torch::kBool &&
                           visible.is_contiguous()),
              "adam_step: visible must be (N,) bool or empty");
  TORCH_CHECK(bias1.scalar_type() == torch::kFloat64 && bias2.scalar_type() == torch::kFloat64 &&
                  bias1.numel() == bias2.numel(),
              "adam_step: bias tables must be float64 of equal length");
  const int64_t d = param.numel() / n, table = bias1.numel();
  float* p = param.data_ptr<float>();
  const float* g = grad.data_ptr<float>();
  float* m = exp_avg.data_ptr<float>();
  float* v = exp_avg_sq.data_ptr<float>();
  int64_t* st = steps.data_ptr<int64_t>();
  const bool* vis = all_rows ? nullptr : visible.data_ptr<bool>();
  const double* bc1 = bias1.data_ptr<double>();
  const double* bc2 = bias2.data_ptr<double>();
  const float w1 = float(1.0 - beta1), b2 = float(beta2), w2 = float(1.0 - beta2), e = float(eps);
  int64_t too_far = 0;
  const int nt = int(std::max<int64_t>(1, threads));
#pragma omp parallel for schedule(static, 2048) num_threads(nt) if (nt > 1 && n * d > 65536) reduction(+ : too_far)
  for (int64_t i = 0; i < n; ++i) {
    if (vis && !vis[i]) continue;
    const int64_t s = st[i] + 1;
    if (s >= table) {
      ++too_far;
      continue;
    }
    st[i] = s;
    double scale = 1.0;
    if (rescale_cap > 0.0) scale = std::min(rescale_cap, std::sqrt(double(global_step) / double(s)));
    const float neg_step = float(-lr * scale / bc1[s]);
    const float bias2s = float(bc2[s]);
    float* pr = p + i * d;
    const float* gr = g + i * d;
    float* mr = m + i * d;
    float* vr = v + i * d;
    for (int64_t k = 0; k < d; ++k) {
      const float gk = gr[k];
      const float mk = std::fma(w1, gk - mr[k], mr[k]);  // torch's lerp is one fused multiply-add
      const float vk = std::fma(w2 * gk, gk, vr[k] * b2);  // torch: mul_(b2), then addcmul_ (an fma)
      mr[k] = mk;
      vr[k] = vk;
      pr[k] = pr[k] + neg_step * mk / (std::sqrt(vk) / bias2s + e);
    }
  }
  TORCH_CHECK(too_far == 0, "adam_step: a step count reached the end of the bias tables (extend them)");
}

}  // namespace splat_adam

void bind_adam(pybind11::module& m) {
  m.def("adam_step", &splat_adam::step,
        "visible-only Adam step in place: param, grad, exp_avg, exp_avg_sq, steps, visible, bias1, bias2, "
        "lr, beta1, beta2, eps, threads, global_step, rescale_cap");
}
