// SSIM as 3DGS trains with it, forward and backward on the CPU (C++17, OpenMP).
//
// Twin of splat/eval/metrics.py::ssim_torch: per colour channel, an 11x11 Gaussian window (sigma 1.5,
// the weights come from Python) with zero padding ("same" size), C1 = 0.01^2, C2 = 0.03^2, and the
// mean of the SSIM map over channels and pixels, per image. The window is separable: a horizontal
// and a vertical 11-tap pass. Images are (B, H, W, C) float32, channels interleaved, so a row is
// L = W * C floats and the horizontal taps step by C; zero padding is simply leaving out the taps
// that fall outside the row or the image. Every output element is a fixed-order sum, and the means
// are summed row by row in a fixed order, so results do not depend on the thread count.
//
// Backward (only the first image gets a gradient): with A = 2 mu_x mu_y + C1,
// B = 2 (e_xy - mu_x mu_y) + C2, C = mu_x^2 + mu_y^2 + C1, D = e_xx - mu_x^2 + e_yy - mu_y^2 + C2 and
// S = AB / CD per element, dS/dmu_x = 2 mu_y (B - A) / CD - 2 mu_x S (1/C - 1/D), dS/de_xx = -S/D,
// dS/de_xy = 2A / CD; the blur is self-adjoint (symmetric window, zero padding), so
// dL/dx = blur(g_mu) + 2 x blur(g_exx) + y blur(g_exy).

#include <torch/extension.h>
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace splat_ssim {

constexpr int kR = 5;  // window radius: 11 taps
constexpr float kC1 = 0.01f * 0.01f, kC2 = 0.03f * 0.03f;

// One horizontal pass over a row of L floats whose neighbours along x are C apart.
inline void blur_row(const float* in, float* out, int64_t L, int64_t C, const float* w) {
  std::fill(out, out + L, 0.0f);
  for (int k = -kR; k <= kR; ++k) {
    const float wk = w[k + kR];
    const int64_t s = k * C, lo = std::max<int64_t>(0, -s), hi = std::min<int64_t>(L, L - s);
    for (int64_t i = lo; i < hi; ++i) out[i] += wk * in[i + s];
  }
}

// Vertical pass of one output row y of plane p: out (L,) = sum_k w[k] tmp[p, y + k] over rows inside.
inline void blur_column_row(const float* tmp, float* out, int64_t p, int64_t y, int64_t H, int64_t L,
                            const float* w) {
  std::fill(out, out + L, 0.0f);
  for (int k = -kR; k <= kR; ++k) {
    const int64_t yy = y + k;
    if (yy < 0 || yy >= H) continue;
    const float wk = w[k + kR];
    const float* t = tmp + (p * H + yy) * L;
    for (int64_t i = 0; i < L; ++i) out[i] += wk * t[i];
  }
}

void check(const torch::Tensor& t, const char* what) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == torch::kFloat32 && t.is_contiguous(), "ssim_cpu: ",
              what, " must be a contiguous float32 CPU tensor");
}

// Returns ssim (B,) and the blurred statistics (B, 5, H, L): mu_x, mu_y, e_xx, e_yy, e_xy.
std::vector<torch::Tensor> forward(torch::Tensor x, torch::Tensor y, torch::Tensor window, int64_t threads) {
  check(x, "img"), check(y, "gt"), check(window, "window");
  TORCH_CHECK(x.dim() == 4 && x.sizes() == y.sizes(), "ssim_cpu: img and gt must both be (B, H, W, C)");
  TORCH_CHECK(window.numel() == 2 * kR + 1, "ssim_cpu: the window must have 11 taps");
  const int64_t B = x.size(0), H = x.size(1), C = x.size(3), L = x.size(2) * C, n = H * L;
  auto stats = torch::empty({B, 5, H, L}, torch::kFloat32);
  auto tmp = torch::empty({B, 5, H, L}, torch::kFloat32);  // after the horizontal pass
  std::vector<double> row_sum(B * H);
  const float *xp = x.data_ptr<float>(), *yp = y.data_ptr<float>(), *w = window.data_ptr<float>();
  float *sp = stats.data_ptr<float>(), *tp = tmp.data_ptr<float>();
  const int nt = int(std::max<int64_t>(1, threads));
#pragma omp parallel num_threads(nt) if (nt > 1 && B * n > 16384)
  {
    std::vector<float> prod(5 * L);  // this row's x, y, xx, yy, xy
#pragma omp for schedule(static)
    for (int64_t r = 0; r < B * H; ++r) {
      const int64_t b = r / H, off = r * L;
      for (int64_t i = 0; i < L; ++i) {
        const float a = xp[off + i], c = yp[off + i];
        prod[i] = a, prod[L + i] = c, prod[2 * L + i] = a * a, prod[3 * L + i] = c * c, prod[4 * L + i] = a * c;
      }
      for (int p = 0; p < 5; ++p) blur_row(&prod[p * L], tp + (b * 5 + p) * n + (r % H) * L, L, C, w);
    }
#pragma omp for schedule(static)
    for (int64_t r = 0; r < B * H; ++r) {
      const int64_t b = r / H, yy = r % H;
      float* s = sp + b * 5 * n + yy * L;
      for (int p = 0; p < 5; ++p) blur_column_row(tp + b * 5 * n, s + p * n, p, yy, H, L, w);
      double acc = 0;
      for (int64_t i = 0; i < L; ++i) {
        const float mx = s[i], my = s[n + i];
        const float vx = s[2 * n + i] - mx * mx, vy = s[3 * n + i] - my * my, cov = s[4 * n + i] - mx * my;
        const float num = (2 * mx * my + kC1) * (2 * cov + kC2);
        const float den = (mx * mx + my * my + kC1) * (vx + vy + kC2);
        acc += double(num / den);
      }
      row_sum[r] = acc;
    }
  }
  auto out = torch::empty({B}, torch::kFloat32);
  for (int64_t b = 0; b < B; ++b) {
    double total = 0;
    for (int64_t r = 0; r < H; ++r) total += row_sum[b * H + r];
    out.data_ptr<float>()[b] = float(total / double(n));
  }
  return {out, stats};
}

// Gradient of sum_b grad[b] * ssim[b] with respect to x, (B, H, W, C).
torch::Tensor backward(torch::Tensor grad, torch::Tensor x, torch::Tensor y, torch::Tensor stats,
                       torch::Tensor window, int64_t threads) {
  check(grad, "grad"), check(x, "img"), check(y, "gt"), check(stats, "stats"), check(window, "window");
  const int64_t B = x.size(0), H = x.size(1), C = x.size(3), L = x.size(2) * C, n = H * L;
  TORCH_CHECK(grad.numel() == B && stats.numel() == B * 5 * n, "ssim_cpu: grad (B,) and stats (B,5,H,L)");
  auto tmp = torch::empty({B, 3, H, L}, torch::kFloat32);  // dL/d(mu_x, e_xx, e_xy) after the horizontal pass
  auto out = torch::empty_like(x);
  const float *xp = x.data_ptr<float>(), *yp = y.data_ptr<float>(), *sp = stats.data_ptr<float>();
  const float *gp = grad.data_ptr<float>(), *w = window.data_ptr<float>();
  float *tp = tmp.data_ptr<float>(), *op = out.data_ptr<float>();
  const int nt = int(std::max<int64_t>(1, threads));
#pragma omp parallel num_threads(nt) if (nt > 1 && B * n > 16384)
  {
    std::vector<float> q(3 * L);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < B * H; ++r) {
      const int64_t b = r / H, row = (r % H) * L;
      const float* s = sp + b * 5 * n + row;
      const float scale = gp[b] / float(n);
      for (int64_t i = 0; i < L; ++i) {
        const float mx = s[i], my = s[n + i];
        const float A = 2 * mx * my + kC1, Bv = 2 * (s[4 * n + i] - mx * my) + kC2;
        const float Cv = mx * mx + my * my + kC1, D = s[2 * n + i] - mx * mx + s[3 * n + i] - my * my + kC2;
        const float cd = Cv * D, S = A * Bv / cd;
        q[i] = scale * (2 * my * (Bv - A) / cd - 2 * mx * S * (1 / Cv - 1 / D));
        q[L + i] = scale * (-S / D);
        q[2 * L + i] = scale * (2 * A / cd);
      }
      for (int p = 0; p < 3; ++p) blur_row(&q[p * L], tp + (b * 3 + p) * n + row, L, C, w);
    }
#pragma omp for schedule(static)
    for (int64_t r = 0; r < B * H; ++r) {
      const int64_t b = r / H, yy = r % H, off = r * L;
      for (int p = 0; p < 3; ++p) blur_column_row(tp + b * 3 * n, &q[p * L], p, yy, H, L, w);
      for (int64_t i = 0; i < L; ++i)
        op[off + i] = q[i] + 2 * xp[off + i] * q[L + i] + yp[off + i] * q[2 * L + i];
    }
  }
  return out;
}

}  // namespace splat_ssim

void bind_ssim(pybind11::module& m) {
  m.def("ssim_forward", &splat_ssim::forward, "SSIM per image of (B,H,W,C) img, gt: ssim (B,), stats");
  m.def("ssim_backward", &splat_ssim::backward, "d(sum grad * ssim)/d img: grad (B,), img, gt, stats");
}
