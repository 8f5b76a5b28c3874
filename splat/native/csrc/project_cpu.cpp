// Projection of 3D Gaussians to screen space and their SH colour on the CPU, forward and exact
// backward (C++17, OpenMP, 8 Gaussians per SIMD step).
//
// Twin of splat/render/project.py::project_gaussians + render.py::gaussian_colors (+ sigmoid opacity
// and the antialias compensation): same formulas, float32, so values agree to float rounding.
// The backward recomputes the forward intermediates (cheap) and writes per-Gaussian gradients plus
// the gradients of the pose (w2c) and intrinsics (K). Those two are sums over Gaussians: each fixed
// chunk of Gaussians sums its own part, the chunks are added in order in double, so results are
// bit-identical for any thread count.

#include <torch/extension.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "simd8.h"

namespace splat_project {

using namespace simd8;

constexpr int64_t kChunk = 1024;        // Gaussians per reduction chunk (fixed: determinism)
constexpr int64_t kParallelMin = 8192;  // fewer Gaussians run on one thread (a barrier costs more)
constexpr float kNormEps = 1e-12f;      // torch.nn.functional.normalize's eps

// SH constants (splat/render/sh.py), as float32 like torch's scalar arithmetic on float tensors.
constexpr float C0 = 0.28209479177387814f, C1 = 0.4886025119029199f;
constexpr float C2[5] = {1.0925484305920792f, -1.0925484305920792f, 0.31539156525252005f,
                         -1.0925484305920792f, 0.5462742152960396f};
constexpr float C3[7] = {-0.5900435899266435f, 2.890611442640554f, -0.4570457994644658f,
                         0.3731763325901154f,  -0.4570457994644658f, 1.445305721320277f,
                         -0.5900435899266435f};

struct Cam {
  float R[9], t[3], C[3];                   // w2c rotation (row-major), translation, camera centre
  float fx, fy, cx, cy, lxp, lxn, lyp, lyn;  // focal, principal point, tan-FoV clamp limits
  float W, H, near, far, eps2d;
  bool antialias, clamp;
  int degree;
};

Cam make_cam(const torch::Tensor& w2c, const torch::Tensor& K, int64_t W, int64_t H, double near, double far,
             double eps2d, bool antialias, bool clamp, int64_t degree) {
  auto w = w2c.accessor<float, 2>();
  auto k = K.accessor<float, 2>();
  Cam c;
  for (int i = 0; i < 3; ++i) {
    for (int j = 0; j < 3; ++j) c.R[3 * i + j] = w[i][j];
    c.t[i] = w[i][3];
  }
  for (int i = 0; i < 3; ++i) c.C[i] = -((c.R[i] * c.t[0] + c.R[3 + i] * c.t[1]) + c.R[6 + i] * c.t[2]);
  c.fx = k[0][0], c.fy = k[1][1], c.cx = k[0][2], c.cy = k[1][2];
  c.W = float(W), c.H = float(H);
  // As project.py::_jacobian: (W - cx) / fx + 0.3 * (0.5 W / fx), and likewise.
  c.lxp = (c.W - c.cx) / c.fx + 0.3f * (float(0.5 * W) / c.fx);
  c.lxn = c.cx / c.fx + 0.3f * (float(0.5 * W) / c.fx);
  c.lyp = (c.H - c.cy) / c.fy + 0.3f * (float(0.5 * H) / c.fy);
  c.lyn = c.cy / c.fy + 0.3f * (float(0.5 * H) / c.fy);
  c.near = float(near), c.far = float(far), c.eps2d = float(eps2d);
  c.antialias = antialias, c.clamp = clamp, c.degree = int(degree);
  return c;
}

// max(x, lo) as torch.clamp_min: NaN stays NaN (simd8::vmax would return lo).
inline vf clamp_min(vf x, float lo) { return select(x < lo, splat(lo), x); }

// ---------------------------------------------------------------- lanes <-> rows

// Eight Gaussians g0.. g0+7 (lanes past N repeat the last Gaussian, so every lane is finite).
struct Group {
  int64_t g0;
  int n;
  int64_t N;
};

// v[j] lane l = base[(g0 + l) * row + j] for j < cols (cols <= 48): 8x8 block transposes where the
// 8-float row reads stay inside the array, element by element otherwise.
__attribute__((always_inline)) inline void load_rows(const float* base, const Group& gr, int row, int cols, vf* v) {
  if (row == 1 && gr.n == kLanes) {
    v[0] = load(base + gr.g0);
    return;
  }
  const int padded = (cols + kLanes - 1) / kLanes * kLanes;
  if (gr.n == kLanes && (gr.g0 + kLanes - 1) * row + padded <= gr.N * row) {
    const float* src = base + gr.g0 * row;
    for (int c0 = 0; c0 < cols; c0 += kLanes) {
      vf blk[kLanes];
      for (int l = 0; l < kLanes; ++l) blk[l] = load(src + l * row + c0);
      transpose8(blk);
      for (int j = 0; j < std::min(kLanes, cols - c0); ++j) v[c0 + j] = blk[j];
    }
    return;
  }
  alignas(32) float tmp[kLanes * 48];
  for (int l = 0; l < kLanes; ++l) {
    const float* r = base + (gr.g0 + std::min(l, gr.n - 1)) * row;
    for (int j = 0; j < cols; ++j) tmp[j * kLanes + l] = r[j];
  }
  for (int j = 0; j < cols; ++j) v[j] = load(tmp + j * kLanes);
}

// base[(g0 + l) * row + j] = v[j] lane l for the group's lanes and j < cols (cols <= 48).
__attribute__((always_inline)) inline void store_rows(float* base, const Group& gr, int row, int cols, const vf* v) {
  if (row == 1 && gr.n == kLanes) {
    store(base + gr.g0, v[0]);
    return;
  }
  if (gr.n == kLanes) {
    float* dst = base + gr.g0 * row;
    for (int c0 = 0; c0 < cols; c0 += kLanes) {
      const int cc = std::min(kLanes, cols - c0);
      vf blk[kLanes];
      for (int j = 0; j < kLanes; ++j) blk[j] = j < cc ? v[c0 + j] : splat(0.0f);
      transpose8(blk);
      for (int l = 0; l < kLanes; ++l) store_first(dst + l * row + c0, blk[l], cc);
    }
    return;
  }
  for (int l = 0; l < gr.n; ++l)
    for (int j = 0; j < cols; ++j) base[(gr.g0 + l) * row + j] = v[j][l];
}

// ---------------------------------------------------------------- forward maths

// Projection intermediates of 8 Gaussians, kept for the backward pass.
struct Proj8 {
  vf m[3], p[3], z, ux, uy, tx, ty;
  vi in_depth, x_neg, x_pos, y_neg, y_pos;  // lanes whose x/z or y/z hit a FoV clamp limit
  vf q[4], qlen, qden, qn[4], Rq[9], s[3], A[9], M[9], S[6];  // S: Sigma 00, 01, 02, 11, 12, 22
  vf j00, j02, j11, j12, c00, c01, c11, a, b, c, det, det_safe, mx2, my2;
  vi det_pos;
};

// p_cam, Jacobian, camera covariance, cov2d and conic inputs, following project.py's operation order.
inline void project8(const Cam& k, Proj8& o) {
  for (int i = 0; i < 3; ++i)
    o.p[i] = ((k.R[3 * i] * o.m[0] + k.R[3 * i + 1] * o.m[1]) + k.R[3 * i + 2] * o.m[2]) + k.t[i];
  o.in_depth = (o.p[2] >= k.near) & (o.p[2] <= k.far);
  o.z = select(o.in_depth, o.p[2], splat(1.0f));
  o.ux = o.p[0] / o.z, o.uy = o.p[1] / o.z;
  o.x_neg = o.ux < -k.lxn, o.y_neg = o.uy < -k.lyn;
  const vf cx = select(o.x_neg, splat(-k.lxn), o.ux), cy = select(o.y_neg, splat(-k.lyn), o.uy);
  o.x_pos = cx > k.lxp, o.y_pos = cy > k.lyp;
  o.tx = o.z * select(o.x_pos, splat(k.lxp), cx);
  o.ty = o.z * select(o.y_pos, splat(k.lyp), cy);

  o.qlen = vsqrt(((o.q[0] * o.q[0] + o.q[1] * o.q[1]) + o.q[2] * o.q[2]) + o.q[3] * o.q[3]);
  o.qden = clamp_min(o.qlen, kNormEps);
  for (int i = 0; i < 4; ++i) o.qn[i] = o.q[i] / o.qden;
  const vf w = o.qn[0], x = o.qn[1], y = o.qn[2], z = o.qn[3];
  o.Rq[0] = 1.0f - 2.0f * (y * y + z * z), o.Rq[1] = 2.0f * (x * y - w * z), o.Rq[2] = 2.0f * (x * z + w * y);
  o.Rq[3] = 2.0f * (x * y + w * z), o.Rq[4] = 1.0f - 2.0f * (x * x + z * z), o.Rq[5] = 2.0f * (y * z - w * x);
  o.Rq[6] = 2.0f * (x * z - w * y), o.Rq[7] = 2.0f * (y * z + w * x), o.Rq[8] = 1.0f - 2.0f * (x * x + y * y);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) {
      o.A[3 * i + j] = (k.R[3 * i] * o.Rq[j] + k.R[3 * i + 1] * o.Rq[3 + j]) + k.R[3 * i + 2] * o.Rq[6 + j];
      o.M[3 * i + j] = o.A[3 * i + j] * o.s[j];
    }
  auto dot = [&](int i, int j) { return (o.M[3 * i] * o.M[3 * j] + o.M[3 * i + 1] * o.M[3 * j + 1]) + o.M[3 * i + 2] * o.M[3 * j + 2]; };
  o.S[0] = dot(0, 0), o.S[1] = dot(0, 1), o.S[2] = dot(0, 2), o.S[3] = dot(1, 1), o.S[4] = dot(1, 2), o.S[5] = dot(2, 2);

  const vf zz = o.z * o.z;
  o.j00 = k.fx / o.z, o.j02 = (-k.fx * o.tx) / zz;
  o.j11 = k.fy / o.z, o.j12 = (-k.fy * o.ty) / zz;
  // J Sigma rows, then cov2d = (J Sigma) J^T.
  const vf r00 = o.j00 * o.S[0] + o.j02 * o.S[2], r02 = o.j00 * o.S[2] + o.j02 * o.S[5];
  const vf r01 = o.j00 * o.S[1] + o.j02 * o.S[4];
  const vf r11 = o.j11 * o.S[3] + o.j12 * o.S[4], r12 = o.j11 * o.S[4] + o.j12 * o.S[5];
  o.c00 = r00 * o.j00 + r02 * o.j02;
  o.c01 = r01 * o.j11 + r02 * o.j12;
  o.c11 = r11 * o.j11 + r12 * o.j12;
  o.a = o.c00 + k.eps2d, o.b = o.c01, o.c = o.c11 + k.eps2d;
  o.det = o.a * o.c - o.b * o.b;
  o.det_pos = o.det > 0.0f;
  o.det_safe = select(o.det_pos, o.det, splat(1.0f));
  o.mx2 = (k.fx * o.p[0]) / o.z + k.cx;
  o.my2 = (k.fy * o.p[1]) / o.z + k.cy;
}

inline vf antialias_ratio(const Proj8& o) { return (o.c00 * o.c11 - o.c01 * o.c01) / o.det_safe; }

// sigmoid(x) and its derivative, from e = exp(-|x|) (no overflow for any x).
inline void sigmoid8(vf x, vf& s, vf& ds) {
  const vf e = exp_neg(-vabs(x));
  const vf inv = 1.0f / (1.0f + e);
  s = select(x >= 0.0f, inv, select(x == x, e * inv, x));  // NaN stays NaN
  ds = e * inv * inv;
}

inline vi finite(vf x) { return vabs(x) < INFINITY; }

// Screen radius as project.py::_radii: ceil(3 sqrt(largest eigenvalue)), 0 where culled.
inline vi radii8(const Cam& k, const Proj8& o) {
  const vf mid = 0.5f * (o.a + o.c);
  const vf lam = mid + vsqrt(vmax(mid * mid - o.det, splat(0.0f)));
  const vf r = vceil(3.0f * vsqrt(vmax(lam, splat(0.0f))));
  const vi inside = (o.mx2 + r > 0.0f) & (o.mx2 - r < k.W) & (o.my2 + r > 0.0f) & (o.my2 - r < k.H);
  const vi keep = o.in_depth & o.det_pos & inside & finite(r) & finite(o.mx2) & finite(o.my2);
  return to_int(select(keep, vmin(r, splat(1073741824.0f)), splat(0.0f)));
}

// ---------------------------------------------------------------- SH

// Unit view directions: normalize(mean - camera centre).
inline void view_dirs(const Cam& k, const vf m[3], vf v[3], vf& den, vf d[3]) {
  for (int i = 0; i < 3; ++i) v[i] = m[i] - k.C[i];
  den = clamp_min(vsqrt((v[0] * v[0] + v[1] * v[1]) + v[2] * v[2]), kNormEps);
  for (int i = 0; i < 3; ++i) d[i] = v[i] / den;
}

// Real SH basis (3DGS signs, sh.py::sh_basis) at directions d; b[0..(deg+1)^2).
template <int DEG>
inline void sh_basis8(const vf d[3], vf* b) {
  const vf x = d[0], y = d[1], z = d[2];
  b[0] = splat(C0);
  if (DEG >= 1) b[1] = -C1 * y, b[2] = C1 * z, b[3] = -C1 * x;
  if (DEG >= 2) {
    const vf xx = x * x, yy = y * y, zz = z * z;
    b[4] = C2[0] * x * y, b[5] = C2[1] * y * z, b[6] = C2[2] * (2.0f * zz - xx - yy);
    b[7] = C2[3] * x * z, b[8] = C2[4] * (xx - yy);
    if (DEG >= 3) {
      b[9] = C3[0] * y * (3.0f * xx - yy), b[10] = C3[1] * x * y * z;
      b[11] = C3[2] * y * (4.0f * zz - xx - yy), b[12] = C3[3] * z * (2.0f * zz - 3.0f * xx - 3.0f * yy);
      b[13] = C3[4] * x * (4.0f * zz - xx - yy), b[14] = C3[5] * z * (xx - yy);
      b[15] = C3[6] * x * (xx - 3.0f * yy);
    }
  }
}

// d(sum_k gb[k] b[k]) / d(direction), for k >= 1.
template <int DEG>
inline void sh_basis_vjp8(const vf d[3], const vf* gb, vf gd[3]) {
  const vf x = d[0], y = d[1], z = d[2];
  gd[0] = gd[1] = gd[2] = splat(0.0f);
  if (DEG < 1) return;
  gd[0] = -C1 * gb[3], gd[1] = -C1 * gb[1], gd[2] = C1 * gb[2];
  if (DEG < 2) return;
  const vf xx = x * x, yy = y * y, zz = z * z;
  gd[0] += C2[0] * y * gb[4] + C2[3] * z * gb[7] + (-2.0f * C2[2]) * x * gb[6] + (2.0f * C2[4]) * x * gb[8];
  gd[1] += C2[0] * x * gb[4] + C2[1] * z * gb[5] + (-2.0f * C2[2]) * y * gb[6] - (2.0f * C2[4]) * y * gb[8];
  gd[2] += C2[1] * y * gb[5] + C2[3] * x * gb[7] + (4.0f * C2[2]) * z * gb[6];
  if (DEG < 3) return;
  const vf xy = x * y, yz = y * z, xz = x * z;
  gd[0] += C3[0] * 6.0f * xy * gb[9] + C3[1] * yz * gb[10] + C3[2] * -2.0f * xy * gb[11] +
           C3[3] * -6.0f * xz * gb[12] + C3[4] * (4.0f * zz - 3.0f * xx - yy) * gb[13] +
           C3[5] * 2.0f * xz * gb[14] + C3[6] * 3.0f * (xx - yy) * gb[15];
  gd[1] += C3[0] * 3.0f * (xx - yy) * gb[9] + C3[1] * xz * gb[10] + C3[2] * (4.0f * zz - xx - 3.0f * yy) * gb[11] +
           C3[3] * -6.0f * yz * gb[12] + C3[4] * -2.0f * xy * gb[13] + C3[5] * -2.0f * yz * gb[14] +
           C3[6] * -6.0f * xy * gb[15];
  gd[2] += C3[1] * xy * gb[10] + C3[2] * 8.0f * yz * gb[11] + C3[3] * (6.0f * zz - 3.0f * xx - 3.0f * yy) * gb[12] +
           C3[4] * 8.0f * xz * gb[13] + C3[5] * (xx - yy) * gb[14];
}

// ---------------------------------------------------------------- per-call inputs

struct Inputs {
  const float *means, *log_scales, *quats, *opacity_logits, *sh_dc, *sh_rest;
  int64_t N, K_rest;  // K_rest: stored rest coefficients per channel
};

inline void load_gaussians(const Inputs& in, const Group& gr, Proj8& o, vf ls[3]) {
  load_rows(in.means, gr, 3, 3, o.m);
  load_rows(in.log_scales, gr, 3, 3, ls);
  load_rows(in.quats, gr, 4, 4, o.q);
  for (int i = 0; i < 3; ++i) o.s[i] = select(ls[i] == ls[i], exp_any(ls[i]), ls[i]);  // NaN stays NaN
}

// Colour of 8 Gaussians: SH at the view direction + 0.5 (unclamped), and the basis used.
template <int DEG>
inline void colors8(const Cam& k, const Inputs& in, const Group& gr, const vf m[3], vf rgb[3], vf* b, vf* rest,
                    vf d[3], vf v[3], vf& den) {
  constexpr int nb = (DEG + 1) * (DEG + 1);
  vf dc[3];
  load_rows(in.sh_dc, gr, 3, 3, dc);
  for (int c = 0; c < 3; ++c) rgb[c] = C0 * dc[c];
  if (DEG > 0) {
    view_dirs(k, m, v, den, d);
    sh_basis8<DEG>(d, b);
    load_rows(in.sh_rest, gr, int(in.K_rest * 3), 3 * (nb - 1), rest);
    for (int c = 0; c < 3; ++c) {
      vf acc = b[1] * rest[c];
      for (int j = 2; j < nb; ++j) acc += b[j] * rest[3 * (j - 1) + c];
      rgb[c] += acc;
    }
  }
  for (int c = 0; c < 3; ++c) rgb[c] += 0.5f;
}

// ---------------------------------------------------------------- forward

struct FwdOut {
  float *means2d, *conics, *colors, *opacities, *depths;
  int32_t* radii;
};

template <int DEG>
void forward_group(const Cam& k, const Inputs& in, const Group& gr, const FwdOut& out) {
  constexpr int nb = (DEG + 1) * (DEG + 1);
  Proj8 o;
  vf ls[3];
  load_gaussians(in, gr, o, ls);
  project8(k, o);
  vf rgb[3], b[nb], rest[3 * nb], d[3], v[3], den;
  colors8<DEG>(k, in, gr, o.m, rgb, b, rest, d, v, den);
  if (k.clamp)
    for (auto& x : rgb) x = clamp_min(x, 0.0f);
  vf ol, s, ds;
  load_rows(in.opacity_logits, gr, 1, 1, &ol);
  sigmoid8(ol, s, ds);
  if (k.antialias) s = s * vsqrt(clamp_min(antialias_ratio(o), 1e-12f));
  const vf m2[2] = {o.mx2, o.my2};
  const vf con[3] = {o.c / o.det_safe, -o.b / o.det_safe, o.a / o.det_safe};
  store_rows(out.means2d, gr, 2, 2, m2);
  store_rows(out.conics, gr, 3, 3, con);
  store_rows(out.colors, gr, 3, 3, rgb);
  store_rows(out.opacities, gr, 1, 1, &s);
  store_rows(out.depths, gr, 1, 1, &o.p[2]);
  const vi r = radii8(k, o);
  for (int l = 0; l < gr.n; ++l) out.radii[gr.g0 + l] = r[l];
}

// ---------------------------------------------------------------- backward

// Gradients of the pose and intrinsics summed over a chunk (lane-wise, float): R (9, row-major),
// t (3), camera centre C (3, from the SH view directions), fx, fy, cx, cy.
constexpr int kCamGrads = 19;

struct BwdIn {
  const float *g_means2d, *g_conics, *g_colors, *g_opacities, *g_depths;
};

struct BwdOut {
  float *means, *log_scales, *quats, *opacity_logits, *sh_dc, *sh_rest;
};

// Backward through the projection given dL/d(means2d, conics, opacity, depth); returns dL/dp_cam in
// gp and adds the camera gradients; writes dL/d(log_scales, quats) and the part of dL/dmean in gm.
inline void project_vjp(const Cam& k, const Proj8& o, const vf gm2[2], const vf gcon[3], vf g_comp, vf gdep,
                        vf gp[3], vf gls[3], vf gq[4], vf* acc) {
  // Conic (c, -b, a) / det_safe; det_safe = det where det > 0; the antialias ratio det_orig / det_safe.
  const vf inv = 1.0f / o.det_safe;
  vf g_a = gcon[2] * inv, g_b = -gcon[1] * inv, g_c = gcon[0] * inv;
  vf g_ds = (gcon[1] * o.b - gcon[0] * o.c - gcon[2] * o.a) * (inv * inv);
  vf g_do = splat(0.0f);
  if (k.antialias) {
    const vf ratio = antialias_ratio(o);
    const vi open = ratio >= 1e-12f;
    const vf comp = vsqrt(clamp_min(ratio, 1e-12f));
    const vf g_ratio = select(open, g_comp * 0.5f / comp, splat(0.0f));
    g_do = g_ratio * inv;
    g_ds -= g_ratio * ratio * inv;
  }
  const vf g_det = select(o.det_pos, g_ds, splat(0.0f));
  g_a += g_det * o.c, g_c += g_det * o.a, g_b -= 2.0f * o.b * g_det;
  // Symmetric dL/dcov2d (before the eps2d low-pass).
  const vf G00 = g_a + g_do * o.c11, G11 = g_c + g_do * o.c00, G01 = 0.5f * g_b - g_do * o.c01;
  // cov2d = J Sigma J^T: dL/dSigma = J^T G J, dL/dJ = 2 G J Sigma.
  const vf gS00 = o.j00 * o.j00 * G00, gS01 = o.j00 * o.j11 * G01, gS11 = o.j11 * o.j11 * G11;
  const vf gS02 = o.j00 * (G00 * o.j02 + G01 * o.j12), gS12 = o.j11 * (G01 * o.j02 + G11 * o.j12);
  const vf gS22 = o.j02 * o.j02 * G00 + 2.0f * o.j02 * o.j12 * G01 + o.j12 * o.j12 * G11;
  const vf r00 = o.j00 * o.S[0] + o.j02 * o.S[2], r02 = o.j00 * o.S[2] + o.j02 * o.S[5];
  const vf r10 = o.j11 * o.S[1] + o.j12 * o.S[2], r11 = o.j11 * o.S[3] + o.j12 * o.S[4];
  const vf r12 = o.j11 * o.S[4] + o.j12 * o.S[5];
  const vf r01 = o.j00 * o.S[1] + o.j02 * o.S[4];
  const vf gj00 = 2.0f * (G00 * r00 + G01 * r10), gj02 = 2.0f * (G00 * r02 + G01 * r12);
  const vf gj11 = 2.0f * (G01 * r01 + G11 * r11), gj12 = 2.0f * (G01 * r02 + G11 * r12);
  // Sigma = M M^T: dL/dM = 2 gS M; M = A diag(s), A = R Rq.
  const vf gS[9] = {gS00, gS01, gS02, gS01, gS11, gS12, gS02, gS12, gS22};
  vf gA[9], gs[3] = {splat(0.0f), splat(0.0f), splat(0.0f)};
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) {
      const vf gM = 2.0f * ((gS[3 * i] * o.M[j] + gS[3 * i + 1] * o.M[3 + j]) + gS[3 * i + 2] * o.M[6 + j]);
      gA[3 * i + j] = gM * o.s[j];
      gs[j] += gM * o.A[3 * i + j];
    }
  for (int j = 0; j < 3; ++j) gls[j] = gs[j] * o.s[j];
  vf gR[9];  // dL/dRq = R^T gA; the pose gets gA Rq^T
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) {
      gR[3 * i + j] = (k.R[i] * gA[j] + k.R[3 + i] * gA[3 + j]) + k.R[6 + i] * gA[6 + j];
      acc[3 * i + j] += (gA[3 * i] * o.Rq[3 * j] + gA[3 * i + 1] * o.Rq[3 * j + 1]) + gA[3 * i + 2] * o.Rq[3 * j + 2];
    }
  const vf w = o.qn[0], x = o.qn[1], y = o.qn[2], z = o.qn[3];
  vf gqn[4];
  gqn[0] = 2.0f * (z * (gR[3] - gR[1]) + y * (gR[2] - gR[6]) + x * (gR[7] - gR[5]));
  gqn[1] = 2.0f * (y * (gR[1] + gR[3]) + z * (gR[2] + gR[6]) + w * (gR[7] - gR[5]) - 2.0f * x * (gR[4] + gR[8]));
  gqn[2] = 2.0f * (x * (gR[1] + gR[3]) + w * (gR[2] - gR[6]) + z * (gR[5] + gR[7]) - 2.0f * y * (gR[0] + gR[8]));
  gqn[3] = 2.0f * (w * (gR[3] - gR[1]) + x * (gR[2] + gR[6]) + y * (gR[5] + gR[7]) - 2.0f * z * (gR[0] + gR[4]));
  // qn = q / max(|q|, eps): the projection onto the tangent plane where |q| > eps.
  const vf dotq = ((gqn[0] * o.qn[0] + gqn[1] * o.qn[1]) + gqn[2] * o.qn[2]) + gqn[3] * o.qn[3];
  const vi unit = o.qlen > kNormEps;
  for (int i = 0; i < 4; ++i) gq[i] = (gqn[i] - select(unit, o.qn[i] * dotq, splat(0.0f))) / o.qden;

  // J = [[fx/z, 0, -fx tx/z^2], [0, fy/z, -fy ty/z^2]] and means2d = f p / z + c.
  const vf iz = 1.0f / o.z, iz2 = iz * iz;
  vf gz = -(gj00 * k.fx + gj11 * k.fy) * iz2 + 2.0f * (gj02 * k.fx * o.tx + gj12 * k.fy * o.ty) * iz2 * iz;
  const vf gtx = -gj02 * k.fx * iz2, gty = -gj12 * k.fy * iz2;
  acc[15] += gj00 * iz - gj02 * o.tx * iz2 + gm2[0] * o.p[0] * iz;
  acc[16] += gj11 * iz - gj12 * o.ty * iz2 + gm2[1] * o.p[1] * iz;
  acc[17] += gm2[0], acc[18] += gm2[1];
  gp[0] = gm2[0] * k.fx * iz, gp[1] = gm2[1] * k.fy * iz;
  gz -= (gm2[0] * k.fx * o.p[0] + gm2[1] * k.fy * o.p[1]) * iz2;
  // tx = z clamp(px / z, -lxn, lxp): inside, dtx/dpx = 1 (and 0 to z); at a limit L, tx = z L.
  const vi x_in = ~(o.x_neg | o.x_pos), y_in = ~(o.y_neg | o.y_pos);
  gp[0] += select(x_in, gtx, splat(0.0f));
  gp[1] += select(y_in, gty, splat(0.0f));
  gz += select(o.x_pos, gtx * k.lxp, select(o.x_neg, -gtx * k.lxn, splat(0.0f)));
  gz += select(o.y_pos, gty * k.lyp, select(o.y_neg, -gty * k.lyn, splat(0.0f)));
  // lxp = (1.15 W - cx) / fx, lxn = (cx + 0.15 W) / fx (and y likewise).
  const vf g_lxp = select(o.x_pos, gtx * o.z, splat(0.0f)), g_lxn = select(o.x_neg, -gtx * o.z, splat(0.0f));
  const vf g_lyp = select(o.y_pos, gty * o.z, splat(0.0f)), g_lyn = select(o.y_neg, -gty * o.z, splat(0.0f));
  acc[15] -= (g_lxp * k.lxp + g_lxn * k.lxn) / k.fx;
  acc[16] -= (g_lyp * k.lyp + g_lyn * k.lyn) / k.fy;
  acc[17] += (g_lxn - g_lxp) / k.fx;
  acc[18] += (g_lyn - g_lyp) / k.fy;
  gp[2] = select(o.in_depth, gz, splat(0.0f)) + gdep;
}

template <int DEG>
void backward_group(const Cam& k, const Inputs& in, const BwdIn& g, const Group& gr, const BwdOut& out, vf* acc) {
  constexpr int nb = (DEG + 1) * (DEG + 1);
  vf gm2[2], gcon[3], gcol[3], gop, gdep;
  load_rows(g.g_means2d, gr, 2, 2, gm2);
  load_rows(g.g_conics, gr, 3, 3, gcon);
  load_rows(g.g_colors, gr, 3, 3, gcol);
  load_rows(g.g_opacities, gr, 1, 1, &gop);
  load_rows(g.g_depths, gr, 1, 1, &gdep);
  const vi lanes = vi{0, 1, 2, 3, 4, 5, 6, 7} < gr.n;  // repeated tail lanes must not count twice
  const vi live = lanes & ((gm2[0] != 0.0f) | (gm2[1] != 0.0f) | (gcon[0] != 0.0f) | (gcon[1] != 0.0f) | (gcon[2] != 0.0f) |
                  (gcol[0] != 0.0f) | (gcol[1] != 0.0f) | (gcol[2] != 0.0f) | (gop != 0.0f) | (gdep != 0.0f));
  const int K3 = int(in.K_rest * 3);
  vf gm[3], gls[3], gq[4], gol, gdc[3];
  if (!movemask(live)) {  // not drawn (culled, or no pixel): all gradients are zero
    const vf zero[4] = {splat(0.0f), splat(0.0f), splat(0.0f), splat(0.0f)};
    store_rows(out.means, gr, 3, 3, zero), store_rows(out.log_scales, gr, 3, 3, zero);
    store_rows(out.quats, gr, 4, 4, zero), store_rows(out.opacity_logits, gr, 1, 1, zero);
    store_rows(out.sh_dc, gr, 3, 3, zero);
    for (int l = 0; l < gr.n; ++l) std::fill_n(out.sh_rest + (gr.g0 + l) * K3, K3, 0.0f);
    return;
  }
  Proj8 o;
  vf ls[3];
  load_gaussians(in, gr, o, ls);
  project8(k, o);
  vf ol, s, ds;
  load_rows(in.opacity_logits, gr, 1, 1, &ol);
  sigmoid8(ol, s, ds);
  vf comp = splat(1.0f);
  if (k.antialias) comp = vsqrt(clamp_min(antialias_ratio(o), 1e-12f));
  gol = gop * comp * ds;
  vf gp[3], lacc[kCamGrads];
  for (auto& x : lacc) x = splat(0.0f);
  project_vjp(k, o, gm2, gcon, gop * s, gdep, gp, gls, gq, lacc);
  // p = R m + t.
  for (int j = 0; j < 3; ++j) gm[j] = (k.R[j] * gp[0] + k.R[3 + j] * gp[1]) + k.R[6 + j] * gp[2];
  for (int i = 0; i < 3; ++i) {
    for (int j = 0; j < 3; ++j) lacc[3 * i + j] += gp[i] * o.m[j];
    lacc[9 + i] += gp[i];
  }
  // Colour: clamp_min(0) passes the gradient where rgb >= 0.
  vf rgb[3], b[nb], rest[3 * nb], d[3], v[3], den;
  colors8<DEG>(k, in, gr, o.m, rgb, b, rest, d, v, den);
  for (int c = 0; c < 3; ++c) {
    if (k.clamp) gcol[c] = select(rgb[c] >= 0.0f, gcol[c], splat(0.0f));
    gdc[c] = C0 * gcol[c];
  }
  vf grest[3 * nb];
  if (DEG > 0) {
    vf gb[nb];
    for (int j = 1; j < nb; ++j) {
      gb[j] = (rest[3 * (j - 1)] * gcol[0] + rest[3 * (j - 1) + 1] * gcol[1]) + rest[3 * (j - 1) + 2] * gcol[2];
      for (int c = 0; c < 3; ++c) grest[3 * (j - 1) + c] = select(live, b[j] * gcol[c], splat(0.0f));
    }
    vf gd[3];
    sh_basis_vjp8<DEG>(d, gb, gd);
    // d = v / max(|v|, eps), v = mean - C.
    const vf dotd = (gd[0] * d[0] + gd[1] * d[1]) + gd[2] * d[2];
    const vi unit = den > kNormEps;
    for (int i = 0; i < 3; ++i) {
      const vf gv = (gd[i] - select(unit, d[i] * dotd, splat(0.0f))) / den;
      gm[i] += gv;
      lacc[12 + i] -= gv;
    }
  }
  const vf zero = splat(0.0f);
  for (int i = 0; i < 3; ++i) gm[i] = select(live, gm[i], zero), gls[i] = select(live, gls[i], zero);
  for (int i = 0; i < 3; ++i) gdc[i] = select(live, gdc[i], zero);
  for (int i = 0; i < 4; ++i) gq[i] = select(live, gq[i], zero);
  gol = select(live, gol, zero);
  for (int i = 0; i < kCamGrads; ++i) acc[i] += select(live, lacc[i], zero);
  store_rows(out.means, gr, 3, 3, gm), store_rows(out.log_scales, gr, 3, 3, gls);
  store_rows(out.quats, gr, 4, 4, gq), store_rows(out.opacity_logits, gr, 1, 1, &gol);
  store_rows(out.sh_dc, gr, 3, 3, gdc);
  constexpr int used = 3 * (nb - 1);
  if (used > 0) store_rows(out.sh_rest, gr, K3, used, grest);
  if (used < K3)
    for (int l = 0; l < gr.n; ++l) std::fill(out.sh_rest + (gr.g0 + l) * K3 + used, out.sh_rest + (gr.g0 + l) * K3 + K3, 0.0f);
}

// ---------------------------------------------------------------- entry points

void check(const torch::Tensor& x, std::initializer_list<int64_t> shape, const char* name) {
  TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == torch::kFloat32 && x.is_contiguous(), name,
              " must be a contiguous float32 CPU tensor");
  TORCH_CHECK(x.sizes() == torch::IntArrayRef(shape), name, " has shape ", x.sizes(), ", expected ",
              torch::IntArrayRef(shape));
}

Inputs check_inputs(const torch::Tensor& means, const torch::Tensor& log_scales, const torch::Tensor& quats,
                    const torch::Tensor& opacity_logits, const torch::Tensor& sh_dc, const torch::Tensor& sh_rest,
                    const torch::Tensor& w2c, const torch::Tensor& K, int64_t degree) {
  const int64_t N = means.size(0);
  TORCH_CHECK(sh_rest.dim() == 3, "sh_rest must be (N, K, 3)");
  const int64_t Kr = sh_rest.size(1);
  check(means, {N, 3}, "means"), check(log_scales, {N, 3}, "log_scales"), check(quats, {N, 4}, "quats");
  check(opacity_logits, {N}, "opacity_logits"), check(sh_dc, {N, 3}, "sh_dc"), check(sh_rest, {N, Kr, 3}, "sh_rest");
  check(w2c, {4, 4}, "w2c"), check(K, {3, 3}, "K");
  TORCH_CHECK(degree >= 0 && degree <= 3 && (degree + 1) * (degree + 1) - 1 <= Kr,
              "sh degree ", degree, " needs ", (degree + 1) * (degree + 1) - 1, " rest coefficients, got ", Kr);
  return Inputs{means.data_ptr<float>(), log_scales.data_ptr<float>(), quats.data_ptr<float>(),
                opacity_logits.data_ptr<float>(), sh_dc.data_ptr<float>(), sh_rest.data_ptr<float>(), N, Kr};
}

int threads_for(int64_t N, int64_t num_threads) {
  const int nt = num_threads > 0 ? int(num_threads) : std::max(1, at::get_num_threads());
  return N >= kParallelMin ? nt : 1;
}

template <typename Fn>
void dispatch_degree(int degree, Fn&& fn) {
  switch (degree) {
    case 0: fn(std::integral_constant<int, 0>{}); break;
    case 1: fn(std::integral_constant<int, 1>{}); break;
    case 2: fn(std::integral_constant<int, 2>{}); break;
    default: fn(std::integral_constant<int, 3>{}); break;
  }
}

std::vector<torch::Tensor> forward(torch::Tensor means, torch::Tensor log_scales, torch::Tensor quats,
                                   torch::Tensor opacity_logits, torch::Tensor sh_dc, torch::Tensor sh_rest,
                                   torch::Tensor w2c, torch::Tensor K, int64_t width, int64_t height, double near,
                                   double far, double eps2d, bool antialias, int64_t degree, bool clamp,
                                   int64_t num_threads) {
  const Inputs in = check_inputs(means, log_scales, quats, opacity_logits, sh_dc, sh_rest, w2c, K, degree);
  const Cam cam = make_cam(w2c, K, width, height, near, far, eps2d, antialias, clamp, degree);
  const int64_t N = in.N;
  auto means2d = torch::empty({N, 2}, torch::kFloat32), conics = torch::empty({N, 3}, torch::kFloat32);
  auto colors = torch::empty({N, 3}, torch::kFloat32), opac = torch::empty({N}, torch::kFloat32);
  auto depths = torch::empty({N}, torch::kFloat32), radii = torch::empty({N}, torch::kInt32);
  const FwdOut out{means2d.data_ptr<float>(), conics.data_ptr<float>(), colors.data_ptr<float>(),
                   opac.data_ptr<float>(), depths.data_ptr<float>(), radii.data_ptr<int32_t>()};
  const int64_t groups = (N + kLanes - 1) / kLanes;
  const int nt = threads_for(N, num_threads);
  dispatch_degree(int(degree), [&](auto deg) {
#pragma omp parallel for schedule(static) num_threads(nt) if(nt > 1)
    for (int64_t i = 0; i < groups; ++i) {
      const Group gr{i * kLanes, int(std::min<int64_t>(kLanes, N - i * kLanes)), N};
      forward_group<decltype(deg)::value>(cam, in, gr, out);
    }
  });
  return {means2d, conics, colors, opac, depths, radii};
}

std::vector<torch::Tensor> backward(torch::Tensor means, torch::Tensor log_scales, torch::Tensor quats,
                                    torch::Tensor opacity_logits, torch::Tensor sh_dc, torch::Tensor sh_rest,
                                    torch::Tensor w2c, torch::Tensor K, int64_t width, int64_t height, double near,
                                    double far, double eps2d, bool antialias, int64_t degree, bool clamp,
                                    torch::Tensor g_means2d, torch::Tensor g_conics, torch::Tensor g_colors,
                                    torch::Tensor g_opacities, torch::Tensor g_depths, int64_t num_threads) {
  const Inputs in = check_inputs(means, log_scales, quats, opacity_logits, sh_dc, sh_rest, w2c, K, degree);
  const Cam cam = make_cam(w2c, K, width, height, near, far, eps2d, antialias, clamp, degree);
  const int64_t N = in.N;
  check(g_means2d, {N, 2}, "g_means2d"), check(g_conics, {N, 3}, "g_conics"), check(g_colors, {N, 3}, "g_colors");
  check(g_opacities, {N}, "g_opacities"), check(g_depths, {N}, "g_depths");
  const BwdIn gin{g_means2d.data_ptr<float>(), g_conics.data_ptr<float>(), g_colors.data_ptr<float>(),
                  g_opacities.data_ptr<float>(), g_depths.data_ptr<float>()};
  auto gm = torch::empty_like(means), gls = torch::empty_like(log_scales), gq = torch::empty_like(quats);
  auto gol = torch::empty_like(opacity_logits), gdc = torch::empty_like(sh_dc), grest = torch::empty_like(sh_rest);
  const BwdOut out{gm.data_ptr<float>(), gls.data_ptr<float>(), gq.data_ptr<float>(), gol.data_ptr<float>(),
                   gdc.data_ptr<float>(), grest.data_ptr<float>()};
  const int64_t chunks = (N + kChunk - 1) / kChunk;
  std::vector<double> parts(size_t(chunks) * kCamGrads, 0.0);
  const int nt = threads_for(N, num_threads);
  dispatch_degree(int(degree), [&](auto deg) {
#pragma omp parallel for schedule(static) num_threads(nt) if(nt > 1)
    for (int64_t ch = 0; ch < chunks; ++ch) {
      vf acc[kCamGrads];
      for (auto& x : acc) x = splat(0.0f);
      const int64_t end = std::min(N, (ch + 1) * kChunk);
      for (int64_t g0 = ch * kChunk; g0 < end; g0 += kLanes) {
        const Group gr{g0, int(std::min<int64_t>(kLanes, end - g0)), N};
        backward_group<decltype(deg)::value>(cam, in, gin, gr, out, acc);
      }
      for (int i = 0; i < kCamGrads; ++i) {
        double sum = 0.0;
        for (int l = 0; l < kLanes; ++l) sum += double(acc[i][l]);
        parts[size_t(ch) * kCamGrads + i] = sum;
      }
    }
  });
  double tot[kCamGrads] = {0};
  for (int64_t ch = 0; ch < chunks; ++ch)
    for (int i = 0; i < kCamGrads; ++i) tot[i] += parts[size_t(ch) * kCamGrads + i];
  // C = -R^T t: dL/dR[j][i] -= gC[i] t[j], dL/dt[j] -= sum_i R[j][i] gC[i].
  for (int j = 0; j < 3; ++j)
    for (int i = 0; i < 3; ++i) {
      tot[3 * j + i] -= tot[12 + i] * double(cam.t[j]);
      tot[9 + j] -= double(cam.R[3 * j + i]) * tot[12 + i];
    }
  auto g_w2c = torch::zeros({4, 4}, torch::kFloat32), g_K = torch::zeros({3, 3}, torch::kFloat32);
  auto gw = g_w2c.accessor<float, 2>();
  auto gk = g_K.accessor<float, 2>();
  for (int i = 0; i < 3; ++i) {
    for (int j = 0; j < 3; ++j) gw[i][j] = float(tot[3 * i + j]);
    gw[i][3] = float(tot[9 + i]);
  }
  gk[0][0] = float(tot[15]), gk[1][1] = float(tot[16]), gk[0][2] = float(tot[17]), gk[1][2] = float(tot[18]);
  return {gm, gls, gq, gol, gdc, grest, g_w2c, g_K};
}

}  // namespace splat_project

void bind_project(pybind11::module& m) {
  m.def("project_forward", &splat_project::forward,
        "projection + SH forward: means2d, conics, colors, opacities, depths, radii");
  m.def("project_backward", &splat_project::backward,
        "projection + SH backward: grads of means, log_scales, quats, opacity_logits, sh_dc, sh_rest, w2c, K");
}
