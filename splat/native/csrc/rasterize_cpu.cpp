// Tiled alpha compositing of screen-space Gaussians on the CPU (C++17, OpenMP, 8-lane SIMD).
//
// Semantics: docs/RASTER_CONTRACT.md, twin of splat/render/composite_torch.py.
// Pipeline: per-Gaussian prep (tile rectangle, pixel box, packed record) -> one stable global
// depth sort -> tile lists filled in depth order (so each list is already sorted by
// (depth, index)) -> per-tile front-to-back compositing -> back-to-front backward writing one
// gradient row per (tile, Gaussian) intersection -> per-Gaussian reduction in a fixed order.
// Every result is independent of the thread count and of OpenMP's schedule: bit-identical runs.
//
// Inner loops put 8 pixels of a tile row in the SIMD lanes; a Gaussian is visited only on the
// rows/blocks of its conservative pixel box (where alpha >= 1/255 is possible), which skips
// exactly the pixels the contract skips. sigma, alpha and T are computed in float32 with the
// contract's operation order (no FMA there), so threshold decisions match the reference.

#include <torch/extension.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <memory>
#include <mutex>
#include <vector>

#include "simd8.h"

namespace {

using namespace simd8;

constexpr float kAlphaMax = 0.99f;
constexpr float kAlphaMin = 1.0f / 255.0f;
constexpr float kTMin = 1e-4f;
constexpr int kMaxTile = 64;
constexpr int kGradCols = 10;
constexpr int kReducePrefetch = 48;  // gradient rows the reduction prefetches ahead
// Loops over fewer Gaussians than this run on one thread: a parallel region costs a barrier, and on
// a busy machine a barrier can wait a whole scheduler time slice for a descheduled thread.
constexpr int64_t kParallelMin = 32768;  // mean x, mean y, conic a, b, c, opacity, r, g, b, depth

// One Gaussian, packed in one cache line for the compositing loops.
// a2s, det, inv_a, b_over_a describe the ellipse sigma <= s (s: conservative log(255 o)) whose
// pixels may reach alpha >= 1/255; a2s = inf means "no culling"; rows [by0, by1] bound it.
struct alignas(64) GRec {
  float mx, my, a, b, c, o, cr, cg, cb, d;
  float a2s, det, inv_a, b_over_a;
  int32_t by0, by1;
};
static_assert(sizeof(GRec) == 64, "GRec is one cache line");

struct Frame {
  int W, H, ts, tiles_x, tiles_y, n_tiles, stride;  // stride: lanes per tile row in the scratch
  Frame(int width, int height, int tile) : W(width), H(height), ts(tile) {
    tiles_x = (W + ts - 1) / ts;
    tiles_y = (H + ts - 1) / ts;
    n_tiles = tiles_x * tiles_y;
    // Blocks of 8 lanes start anywhere in a row, so a row is padded by one block (inactive lanes).
    stride = ((ts + kLanes - 1) / kLanes + 1) * kLanes;
  }
};

#ifdef SPLAT_CPU_CLOCK  // development: process CPU time, to profile on a busy machine with 1 thread
double now() { return double(std::clock()) / CLOCKS_PER_SEC; }
#else
double now() { return omp_get_wtime(); }
#endif

#ifdef SPLAT_STATS  // development counters: block evaluations and useful lanes
#include <atomic>
std::atomic<int64_t> g_stats[4];
#define STAT(k, v) g_stats[k].fetch_add(v, std::memory_order_relaxed)
#else
#define STAT(k, v) (void)0
#endif

template <typename T>
struct AlignedBuf {
  T* p = nullptr;
  explicit AlignedBuf(size_t n) { p = static_cast<T*>(std::aligned_alloc(64, ((n * sizeof(T) + 63) / 64) * 64 + 64)); }
  ~AlignedBuf() { std::free(p); }
  AlignedBuf(const AlignedBuf&) = delete;
  AlignedBuf& operator=(const AlignedBuf&) = delete;
};

// ---------------------------------------------------------------- binning

// Contract tile range along one axis: [floor((mu - r) / T), floor((mu + r) / T) + 1) clamped.
inline void tile_range(float mu, float r, int ts, int n, int& lo, int& hi) {
  auto clampf = [n](float v) { return std::isnan(v) ? 0 : static_cast<int>(std::min(std::max(v, 0.0f), float(n))); };
  lo = clampf(std::floor((mu - r) / float(ts)));
  hi = clampf(std::floor((mu + r) / float(ts)) + 1.0f);
}

// Conservative culling ellipse of a Gaussian: outside it alpha < 1/255 for sure, float rounding of
// sigma included (its error is bounded by ~1e-6 times the conic's condition number kappa).
void culling_ellipse(GRec& g, const Frame& f) {
  const double a = g.a, b = g.b, c = g.c, o = g.o, my = g.my;
  g.a2s = INFINITY, g.det = 0.0f, g.inv_a = 1.0f, g.b_over_a = 0.0f;
  g.by0 = 1, g.by1 = 0;                      // empty
  if (!(o * 255.0 >= 0.99)) return;          // alpha = o * exp(-sigma) <= o < 1/255 (or NaN)
  g.by0 = 0, g.by1 = f.H - 1;                // fallback: no culling
  const double det = a * c - b * b;
  if (!(a > 0 && c > 0 && det > 0 && std::isfinite(det) && std::isfinite(g.mx) && std::isfinite(my))) return;
  const double lmax = 0.5 * (a + c) + std::sqrt(0.25 * (a - c) * (a - c) + b * b);
  const double kappa = lmax * lmax / det;
  if (!(kappa < 1e5)) return;
  const double s = (std::log(255.0 * o) + 1e-3) * (1.0 + 1e-5 * kappa) + 1e-3;
  const double ey = std::sqrt(2.0 * s * a / det) * 1.0001 + 1e-3;  // max |dy| with sigma <= s
  auto clampi = [](double v, int hi) { return static_cast<int>(std::min(std::max(v, -1.0), double(hi))); };
  g.by0 = clampi(std::floor(my - 0.5 - ey), f.H), g.by1 = clampi(std::ceil(my - 0.5 + ey), f.H);
  g.a2s = float(2.0 * a * s), g.det = float(det), g.inv_a = float(1.0 / a), g.b_over_a = float(b / a);
}

// Sortable unsigned key of a float depth: ascending like torch.sort (-0 == +0, NaN last).
inline uint32_t depth_key(float d) {
  if (std::isnan(d)) return 0xFFFFFFFFu;
  if (d == 0.0f) d = 0.0f;
  uint32_t u;
  std::memcpy(&u, &d, 4);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// Stable LSD radix sort of ids by keys (3 passes of 11 bits; trivial passes skipped).
void radix_sort(std::vector<uint32_t>& keys, std::vector<int32_t>& ids) {
  const size_t n = keys.size();
  std::vector<uint32_t> k2(n);
  std::vector<int32_t> i2(n);
  for (int shift = 0; shift < 32; shift += 11) {
    std::vector<size_t> hist(2049, 0);
    for (size_t i = 0; i < n; ++i) ++hist[((keys[i] >> shift) & 2047u) + 1];
    if (*std::max_element(hist.begin(), hist.end()) == n) continue;
    for (int b = 0; b < 2048; ++b) hist[b + 1] += hist[b];
    for (size_t i = 0; i < n; ++i) {
      const size_t pos = hist[(keys[i] >> shift) & 2047u]++;
      k2[pos] = keys[i];
      i2[pos] = ids[i];
    }
    keys.swap(k2);
    ids.swap(i2);
  }
}

struct Binning {
  torch::Tensor recs;          // (N, 16) float32 packed GRec
  torch::Tensor tile_offsets;  // (n_tiles + 1,) int32
  torch::Tensor gids;          // (M,) int32 Gaussian of each intersection, per tile front to back
  torch::Tensor pos_of;        // (M,) int32 tile-list position of each intersection in Gaussian order
  torch::Tensor goff;          // (N + 1,) int32 first intersection (Gaussian order) of each Gaussian
  double t_prep = 0, t_sort = 0, t_fill = 0;
};

Binning bin_gaussians(const float* means, const float* conics, const float* colors, const float* opac,
                      const float* depths, const int32_t* radii, int64_t N, const Frame& f, int nt) {
  Binning out;
  double t0 = now();
  out.recs = torch::empty({N, 16}, torch::kFloat32);
  auto* recs = reinterpret_cast<GRec*>(out.recs.data_ptr<float>());
  std::vector<int32_t> rect(4 * N);
  std::vector<int64_t> counts(N);
#pragma omp parallel for schedule(static) num_threads(nt) if(N >= kParallelMin)
  for (int64_t g = 0; g < N; ++g) {
    GRec& r = recs[g];
    r = GRec{means[2 * g], means[2 * g + 1], conics[3 * g], conics[3 * g + 1], conics[3 * g + 2], opac[g],
             colors[3 * g], colors[3 * g + 1], colors[3 * g + 2], depths[g], 0, 0, 0, 0, 1, 0};
    int x0 = 0, x1 = 0, y0 = 0, y1 = 0;
    if (radii[g] > 0) {
      tile_range(r.mx, float(radii[g]), f.ts, f.tiles_x, x0, x1);
      tile_range(r.my, float(radii[g]), f.ts, f.tiles_y, y0, y1);
    }
    const int64_t cnt = int64_t(std::max(x1 - x0, 0)) * std::max(y1 - y0, 0);
    counts[g] = cnt;
    rect[4 * g] = x0, rect[4 * g + 1] = x1, rect[4 * g + 2] = y0, rect[4 * g + 3] = y1;
    if (cnt > 0) culling_ellipse(r, f);
  }
  out.goff = torch::empty({N + 1}, torch::kInt32);
  int32_t* goff = out.goff.data_ptr<int32_t>();
  int64_t M = 0;
  std::vector<uint32_t> keys;
  std::vector<int32_t> order;
  for (int64_t g = 0; g < N; ++g) {
    goff[g] = int32_t(M);
    M += counts[g];
    TORCH_CHECK(M < (int64_t(1) << 31), "composite_cpu: too many tile intersections (", M, ")");
    if (counts[g] > 0) keys.push_back(depth_key(depths[g])), order.push_back(int32_t(g));
  }
  goff[N] = int32_t(M);
  double t1 = now();
  radix_sort(keys, order);
  double t2 = now();

  // Chunks of the depth order (their number depends on the data only, not on the thread count)
  // count per tile, then fill: each tile list comes out in (depth, index) order.
  const int64_t nvis = int64_t(order.size());
  struct Visit { int32_t x0, x1, y0, y1, g, row; };  // one visible Gaussian, in depth order
  std::vector<Visit> visits(nvis);
#pragma omp parallel for schedule(static) num_threads(nt) if(nvis >= kParallelMin)
  for (int64_t i = 0; i < nvis; ++i) {
    const int32_t g = order[i];
    const int32_t* rc = &rect[4 * int64_t(g)];
    visits[i] = Visit{rc[0], rc[1], rc[2], rc[3], g, goff[g]};
  }
  const int n_chunks = int(std::min<int64_t>(16, std::max<int64_t>(1, nvis / 16384)));
  std::vector<int64_t> cursor(int64_t(n_chunks) * f.n_tiles, 0);
  auto chunk_lo = [&](int c) { return nvis * c / n_chunks; };
#pragma omp parallel for schedule(static) num_threads(nt) if(n_chunks > 1)
  for (int c = 0; c < n_chunks; ++c) {
    int64_t* hist = &cursor[int64_t(c) * f.n_tiles];
    for (int64_t i = chunk_lo(c); i < chunk_lo(c + 1); ++i) {
      const Visit& v = visits[i];
      for (int ty = v.y0; ty < v.y1; ++ty)
        for (int tx = v.x0; tx < v.x1; ++tx) ++hist[ty * f.tiles_x + tx];
    }
  }
  out.tile_offsets = torch::empty({f.n_tiles + 1}, torch::kInt32);
  int32_t* toff = out.tile_offsets.data_ptr<int32_t>();
  int64_t run = 0;
  for (int t = 0; t < f.n_tiles; ++t) {
    toff[t] = int32_t(run);
    for (int c = 0; c < n_chunks; ++c) {
      const int64_t cnt = cursor[int64_t(c) * f.n_tiles + t];
      cursor[int64_t(c) * f.n_tiles + t] = run;
      run += cnt;
    }
  }
  toff[f.n_tiles] = int32_t(run);
  out.gids = torch::empty({M}, torch::kInt32);
  out.pos_of = torch::empty({M}, torch::kInt32);
  int32_t* gids = out.gids.data_ptr<int32_t>();
  int32_t* pos_of = out.pos_of.data_ptr<int32_t>();
#pragma omp parallel for schedule(static) num_threads(nt) if(n_chunks > 1)
  for (int c = 0; c < n_chunks; ++c) {
    int64_t* cur = &cursor[int64_t(c) * f.n_tiles];
    for (int64_t i = chunk_lo(c); i < chunk_lo(c + 1); ++i) {
      const Visit& v = visits[i];
      int32_t row = v.row;
      for (int ty = v.y0; ty < v.y1; ++ty)
        for (int tx = v.x0; tx < v.x1; ++tx) {
          const int64_t pos = cur[ty * f.tiles_x + tx]++;
          gids[pos] = v.g;
          pos_of[row++] = int32_t(pos);
        }
    }
  }
  out.t_prep = t1 - t0, out.t_sort = t2 - t1, out.t_fill = now() - t2;
  return out;
}

// ---------------------------------------------------------------- forward

// Per-thread pixel state of one tile: ts rows x stride lanes.
struct TileScratch {
  int n;
  AlignedBuf<float> T, C0, C1, C2, D, G0, G1, G2, GD, S;
  AlignedBuf<int32_t> stop;
  explicit TileScratch(int n_)
      : n(n_), T(n_), C0(n_), C1(n_), C2(n_), D(n_), G0(n_), G1(n_), G2(n_), GD(n_), S(n_), stop(n_) {}
};

inline vf lane_centres(int x) {  // pixel centres x + lane + 0.5 of 8 pixels (exact in float32)
  return float(x) + vf{0.5f, 1.5f, 2.5f, 3.5f, 4.5f, 5.5f, 6.5f, 7.5f};
}

struct TileGeom {
  int x_lo, y_lo, rows, cols;
  TileGeom(int t, const Frame& f) {
    x_lo = (t % f.tiles_x) * f.ts, y_lo = (t / f.tiles_x) * f.ts;
    rows = std::min(f.ts, f.H - y_lo), cols = std::min(f.ts, f.W - x_lo);
  }
  // Rows [r0, r1] of the tile that the Gaussian's culling ellipse reaches, and on each of them the
  // tile-local column range [c0[r], c1[r]] (empty when c0 > c1). False if no row.
  bool spans(const GRec& g, int& r0, int& r1, int* c0, int* c1) const {
    r0 = std::max(g.by0 - y_lo, 0), r1 = std::min(g.by1 - y_lo, rows - 1);
    if (r0 > r1) return false;
    if (!(g.a2s < INFINITY)) {
      for (int r = r0; r <= r1; ++r) c0[r] = 0, c1[r] = cols - 1;
      return true;
    }
    for (int r = r0; r <= r1; r += kLanes) {  // 8 rows at a time; sigma <= s on a row is an interval
      const vf dy = g.my - lane_centres(y_lo + r);
      const vf q = (g.a2s - g.det * (dy * dy)) + g.a2s * 1e-5f;
      const vf hw = vsqrt(vmax(q, splat(0.0f))) * (g.inv_a * 1.0001f) + 0.02f;
      const vf ctr = g.mx + g.b_over_a * dy;  // pixel-centre x of the interval's middle
      const vf margin = 0.01f + 1e-5f * (std::fabs(g.mx) + vabs(g.b_over_a * dy)) + hw;
      const vf lo = vmax(vceil(ctr - margin - (0.5f + float(x_lo))), splat(0.0f));
      const vf hi = vmin(vfloor(ctr + margin - (0.5f + float(x_lo))), splat(float(cols - 1)));
      const vi empty = (q < 0.0f) | (lo > hi);
      store_i(c0 + r, select_i(empty, splat_i(1), to_int(lo)));
      store_i(c1 + r, select_i(empty, splat_i(0), to_int(hi)));
    }
    return true;
  }
};

// sigma and alpha of a Gaussian on 8 pixels, in the contract's float32 operation order.
// A Gaussian's parameters broadcast to all lanes once per tile (locals: no reloads through aliasing).
struct GaussVec {
  vf mx, a, b, o, cr, cg, cb, d;
  explicit GaussVec(const GRec& g)
      : mx(splat(g.mx)), a(splat(g.a)), b(splat(g.b)), o(splat(g.o)), cr(splat(g.cr)), cg(splat(g.cg)),
        cb(splat(g.cb)), d(splat(g.d)) {}
};

struct Eval {
  vf dx, sigma, e, oe, alpha;
  vi ok;  // sigma >= 0 and alpha >= 1/255
  inline Eval(const GaussVec& g, vf pxc, vf dy, vf cyy) {
    dx = g.mx - pxc;
    sigma = 0.5f * ((g.a * dx) * dx + cyy) + (g.b * dx) * dy;
    e = exp_neg(-sigma);
    oe = g.o * e;
    alpha = select(oe > kAlphaMax, splat(kAlphaMax), oe);  // NaN stays NaN, as clamp_max
    ok = (sigma >= 0.0f) & (alpha >= kAlphaMin);
  }
};

struct FwdOut {
  float *image, *alpha, *depth, *T_final;
  int32_t* last;
};

void forward_tile(int t, const Frame& f, const GRec* recs, const int32_t* gids, const int32_t* toff,
                  const float* bg, TileScratch& s, const FwdOut& out) {
  const TileGeom tg(t, f);
  const int begin = toff[t], n = toff[t + 1] - begin;
  int row_alive[kMaxTile], alive = tg.rows * tg.cols;
  for (int r = 0; r < tg.rows; ++r) {
    row_alive[r] = tg.cols;
    for (int k = 0; k < f.stride; ++k) {
      const int i = r * f.stride + k;
      s.T.p[i] = 1.0f, s.C0.p[i] = s.C1.p[i] = s.C2.p[i] = s.D.p[i] = 0.0f;
      s.stop.p[i] = k < tg.cols ? n : -1;  // pixel active at list position j while j < stop
    }
  }
  for (int j = 0; j < n && alive > 0; ++j) {
    if (j + 4 < n) __builtin_prefetch(&recs[gids[begin + j + 4]]);
    const GRec& g = recs[gids[begin + j]];
    int r0, r1, c0[kMaxTile + kLanes], c1[kMaxTile + kLanes];
    if (!tg.spans(g, r0, r1, c0, c1)) continue;
    const vi jv = splat_i(j);
    const GaussVec gv(g);
    for (int r = r0; r <= r1; ++r) {
      if (row_alive[r] == 0 || c0[r] > c1[r]) continue;
      const float dy_s = g.my - (float(tg.y_lo + r) + 0.5f);
      const vf dy = splat(dy_s), cyy = splat((g.c * dy_s) * dy_s);
      for (int x = c0[r]; x <= c1[r]; x += kLanes) {  // blocks start at the span, not 8-aligned
        const int i = r * f.stride + x;
        const vi stop = load_i(s.stop.p + i);
        const vi live = stop > jv;
        if (!movemask(live)) continue;  // all 8 pixels already terminated
        const Eval ev(gv, lane_centres(tg.x_lo + x), dy, cyy);
        const vi valid = ev.ok & live;
        const vf T = load(s.T.p + i);
        const vf next_T = T * (1.0f - ev.alpha);
        const vi term = valid & (next_T < kTMin);
        const vi use = valid & ~term;
        STAT(0, 1);
        STAT(1, __builtin_popcount(movemask(use)));
        STAT(2, __builtin_popcount(movemask(ev.ok)));
        const vf w = select(use, ev.alpha * T, splat(0.0f));
        store(s.C0.p + i, fmadd(w, gv.cr, load(s.C0.p + i)));
        store(s.C1.p + i, fmadd(w, gv.cg, load(s.C1.p + i)));
        store(s.C2.p + i, fmadd(w, gv.cb, load(s.C2.p + i)));
        store(s.D.p + i, fmadd(w, gv.d, load(s.D.p + i)));
        store(s.T.p + i, select(use, next_T, T));
        const int m = movemask(term);
        if (m) {
          store_i(s.stop.p + i, select_i(term, jv, stop));
          const int k = __builtin_popcount(m);
          row_alive[r] -= k, alive -= k;
        }
      }
    }
  }
  for (int r = 0; r < tg.rows; ++r) {
    for (int k = 0; k < tg.cols; ++k) {
      const int i = r * f.stride + k;
      const int64_t p = int64_t(tg.y_lo + r) * f.W + tg.x_lo + k;
      const float T = s.T.p[i];
      out.image[3 * p] = s.C0.p[i] + T * bg[0];
      out.image[3 * p + 1] = s.C1.p[i] + T * bg[1];
      out.image[3 * p + 2] = s.C2.p[i] + T * bg[2];
      out.alpha[p] = 1.0f - T;
      out.depth[p] = s.D.p[i];
      out.T_final[p] = T;
      out.last[p] = s.stop.p[i];
    }
  }
}

void check_inputs(const torch::Tensor& means2d, const torch::Tensor& conics, const torch::Tensor& colors,
                  const torch::Tensor& opacities, const torch::Tensor& depths, const torch::Tensor& radii,
                  const torch::Tensor& background, int tile_size) {
  const int64_t N = means2d.size(0);
  auto f32 = [](const torch::Tensor& x, const char* name) {
    TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == torch::kFloat32 && x.is_contiguous(), name,
                " must be a contiguous float32 CPU tensor");
  };
  f32(means2d, "means2d"), f32(conics, "conics"), f32(colors, "colors"), f32(opacities, "opacities");
  f32(depths, "depths"), f32(background, "background");
  TORCH_CHECK(means2d.dim() == 2 && means2d.size(1) == 2, "means2d must be (N, 2)");
  TORCH_CHECK(conics.sizes() == torch::IntArrayRef({N, 3}), "conics must be (N, 3)");
  TORCH_CHECK(colors.sizes() == torch::IntArrayRef({N, 3}), "colors must be (N, 3)");
  TORCH_CHECK(opacities.numel() == N && depths.numel() == N && radii.numel() == N, "opacities, depths, radii must be (N,)");
  TORCH_CHECK(radii.scalar_type() == torch::kInt32 && radii.is_contiguous(), "radii must be contiguous int32");
  TORCH_CHECK(background.numel() == 3, "background must be (3,)");
  TORCH_CHECK(tile_size >= 1 && tile_size <= kMaxTile, "tile_size must be in 1..", kMaxTile);
}

int resolve_threads(int64_t num_threads) {
  return num_threads > 0 ? int(num_threads) : std::max(1, at::get_num_threads());
}

std::vector<torch::Tensor> forward(torch::Tensor means2d, torch::Tensor conics, torch::Tensor colors,
                                   torch::Tensor opacities, torch::Tensor depths, torch::Tensor radii,
                                   int64_t width, int64_t height, torch::Tensor background, int64_t tile_size,
                                   int64_t num_threads) {
  check_inputs(means2d, conics, colors, opacities, depths, radii, background, int(tile_size));
  TORCH_CHECK(width > 0 && height > 0, "width and height must be positive");
  const Frame f{int(width), int(height), int(tile_size)};
  const int nt = resolve_threads(num_threads);
  const int64_t N = means2d.size(0);
  Binning bins = bin_gaussians(means2d.data_ptr<float>(), conics.data_ptr<float>(), colors.data_ptr<float>(),
                               opacities.data_ptr<float>(), depths.data_ptr<float>(), radii.data_ptr<int32_t>(),
                               N, f, nt);
  const double t0 = now();
  auto image = torch::empty({height, width, 3}, torch::kFloat32);
  auto alpha = torch::empty({height, width}, torch::kFloat32);
  auto depth = torch::empty({height, width}, torch::kFloat32);
  auto T_final = torch::empty({height, width}, torch::kFloat32);
  auto last = torch::empty({height, width}, torch::kInt32);
  const FwdOut out{image.data_ptr<float>(), alpha.data_ptr<float>(), depth.data_ptr<float>(),
                   T_final.data_ptr<float>(), last.data_ptr<int32_t>()};
  const auto* recs = reinterpret_cast<const GRec*>(bins.recs.data_ptr<float>());
  const int32_t* gids = bins.gids.data_ptr<int32_t>();
  const int32_t* toff = bins.tile_offsets.data_ptr<int32_t>();
  const float* bg = background.data_ptr<float>();
#pragma omp parallel num_threads(nt) if(f.n_tiles > 1)
  {
    TileScratch scratch(f.ts * f.stride);
#pragma omp for schedule(dynamic, 1)
    for (int t = 0; t < f.n_tiles; ++t) forward_tile(t, f, recs, gids, toff, bg, scratch, out);
  }
  auto timings = torch::tensor({bins.t_prep, bins.t_sort, bins.t_fill, now() - t0}, torch::kFloat64);
  return {image, alpha, depth, T_final, last, bins.tile_offsets, bins.gids, bins.pos_of, bins.goff, bins.recs, timings};
}

// ---------------------------------------------------------------- backward

struct BwdIn {
  const float *g_image, *g_alpha, *g_depth, *T_final, *bg;
  const int32_t* last;
};

// Gradient row of Gaussian g at one tile: d(mx, my, a, b, c, o, r, g, b, depth), summed over the
// tile's pixels back to front. dL/dalpha_i = T_i (G.c_i + gD d_i) - S_i / (1 - alpha_i), where
// S_i = sum_{j>i} w_j (G.c_j + gD d_j) + T_N (G.bg - gA) is kept per pixel.
// With s = dL/dsigma and dx = mx - px, dy = my - py (dy constant along a row), the loop keeps only
// sums of s, s dx, s dx dx per row; the factors a, b, c, dy are applied once per row or per tile:
// dL/dmx = a S(s dx) + b S(s dy), dL/dmy = b S(s dx) + c S(s dy),
// dL/da = S(s dx dx) / 2, dL/db = S(s dx dy), dL/dc = S(s dy dy) / 2.
inline void backward_gaussian(const GRec& g, int j, const TileGeom& tg, const Frame& f,
                              const int* row_last, TileScratch& s, float* row_out) {
  // acc: S(s dx), S(s dy), S(s dx dx), S(s dx dy), S(s dy dy), d opacity, d colour (3), d depth.
  vf acc[kGradCols];
  for (auto& a : acc) a = splat(0.0f);
  int r0, r1, c0[kMaxTile + kLanes], c1[kMaxTile + kLanes];
  if (tg.spans(g, r0, r1, c0, c1)) {
    const vi jv = splat_i(j);
    const GaussVec gv(g);
    for (int r = r0; r <= r1; ++r) {
      if (row_last[r] <= j || c0[r] > c1[r]) continue;
      const float dy_s = g.my - (float(tg.y_lo + r) + 0.5f);
      const vf dy = splat(dy_s), cyy = splat((g.c * dy_s) * dy_s);
      vf row_s = splat(0.0f), row_sx = splat(0.0f);
      for (int x = c0[r]; x <= c1[r]; x += kLanes) {
        const int i = r * f.stride + x;
        const vi live = load_i(s.stop.p + i) > jv;  // Gaussian j was composited only before `last`
        if (!movemask(live)) continue;
        const Eval ev(gv, lane_centres(tg.x_lo + x), dy, cyy);
        const vi valid = ev.ok & live;
        STAT(3, 1);
        if (!movemask(valid)) continue;
        const vf T = load(s.T.p + i), S = load(s.S.p + i);
        const vf G0 = load(s.G0.p + i), G1 = load(s.G1.p + i), G2 = load(s.G2.p + i), GD = load(s.GD.p + i);
        const vf inv = 1.0f / (1.0f - ev.alpha);
        const vf T_i = T * inv;  // transmittance in front of this Gaussian
        const vf w = select(valid, ev.alpha * T_i, splat(0.0f));
        const vf gc = fmadd(G0, gv.cr, fmadd(G1, gv.cg, fmadd(G2, gv.cb, GD * gv.d)));
        const vf d_alpha = select(valid, T_i * gc - S * inv, splat(0.0f));
        store(s.S.p + i, fmadd(w, gc, S));
        store(s.T.p + i, select(valid, T_i, T));
        acc[6] = fmadd(G0, w, acc[6]);
        acc[7] = fmadd(G1, w, acc[7]);
        acc[8] = fmadd(G2, w, acc[8]);
        acc[9] = fmadd(GD, w, acc[9]);
        const vf d_a = select(ev.oe <= kAlphaMax, d_alpha, splat(0.0f));  // clamp_max passes at equality
        acc[5] = fmadd(d_a, ev.e, acc[5]);
        const vf d_sigma = -(d_a * ev.oe);
        const vf dxs = d_sigma * ev.dx;
        row_s += d_sigma;
        row_sx += dxs;
        acc[2] = fmadd(dxs, ev.dx, acc[2]);
      }
      acc[0] += row_sx;
      acc[1] = fmadd(row_s, dy, acc[1]);
      acc[3] = fmadd(row_sx, dy, acc[3]);
      acc[4] = fmadd(row_s, dy * dy, acc[4]);
    }
  }
  float sums[kGradCols];
  hsum8(acc, sums);
  sums[8] = hsum(acc[8]);
  sums[9] = hsum(acc[9]);
  row_out[0] = g.a * sums[0] + g.b * sums[1];
  row_out[1] = g.b * sums[0] + g.c * sums[1];
  row_out[2] = 0.5f * sums[2], row_out[3] = sums[3], row_out[4] = 0.5f * sums[4];
  for (int k = 5; k < kGradCols; ++k) row_out[k] = sums[k];
}

void backward_tile(int t, const Frame& f, const GRec* recs, const int32_t* gids, const int32_t* toff,
                   const BwdIn& in, TileScratch& s, float* rows, double* bg_grad) {
  const TileGeom tg(t, f);
  const int begin = toff[t], n = toff[t + 1] - begin;
  int row_last[kMaxTile];
  int tile_last = 0;
  double bgs[3] = {0, 0, 0};
  for (int r = 0; r < tg.rows; ++r) {
    row_last[r] = 0;
    for (int k = 0; k < f.stride; ++k) {
      const int i = r * f.stride + k;
      if (k >= tg.cols) {
        s.T.p[i] = 1.0f, s.S.p[i] = s.G0.p[i] = s.G1.p[i] = s.G2.p[i] = s.GD.p[i] = 0.0f, s.stop.p[i] = 0;
        continue;
      }
      const int64_t p = int64_t(tg.y_lo + r) * f.W + tg.x_lo + k;
      const float T = in.T_final[p];
      const float G0 = in.g_image[3 * p], G1 = in.g_image[3 * p + 1], G2 = in.g_image[3 * p + 2];
      s.T.p[i] = T, s.G0.p[i] = G0, s.G1.p[i] = G1, s.G2.p[i] = G2, s.GD.p[i] = in.g_depth[p];
      s.S.p[i] = T * (G0 * in.bg[0] + G1 * in.bg[1] + G2 * in.bg[2] - in.g_alpha[p]);
      s.stop.p[i] = in.last[p];
      row_last[r] = std::max(row_last[r], in.last[p]);
      bgs[0] += double(G0) * T, bgs[1] += double(G1) * T, bgs[2] += double(G2) * T;
    }
    tile_last = std::max(tile_last, row_last[r]);
  }
  for (int k = 0; k < 3; ++k) bg_grad[3 * t + k] = bgs[k];
  float* tile_rows = rows + int64_t(begin) * kGradCols;  // one row per list entry
  std::memset(tile_rows + int64_t(tile_last) * kGradCols, 0, sizeof(float) * kGradCols * (n - tile_last));
  for (int j = tile_last - 1; j >= 0; --j) {
    if (j >= 4) __builtin_prefetch(&recs[gids[begin + j - 4]]);
    backward_gaussian(recs[gids[begin + j]], j, tg, f, row_last, s, tile_rows + int64_t(j) * kGradCols);
  }
}

std::vector<torch::Tensor> backward(torch::Tensor g_image, torch::Tensor g_alpha, torch::Tensor g_depth,
                                    torch::Tensor background, torch::Tensor T_final, torch::Tensor last,
                                    torch::Tensor tile_offsets, torch::Tensor gids, torch::Tensor pos_of,
                                    torch::Tensor goff, torch::Tensor recs_t, int64_t width, int64_t height,
                                    int64_t tile_size, int64_t num_threads) {
  for (const auto* x : {&g_image, &g_alpha, &g_depth, &background, &T_final})
    TORCH_CHECK(x->scalar_type() == torch::kFloat32 && x->is_contiguous(), "backward: float32 contiguous inputs");
  TORCH_CHECK(g_image.numel() == height * width * 3 && g_alpha.numel() == height * width &&
                  g_depth.numel() == height * width, "backward: gradient shapes do not match the image");
  const Frame f{int(width), int(height), int(tile_size)};
  const int nt = resolve_threads(num_threads);
  const int64_t N = recs_t.size(0), M = gids.size(0);
  const double t0 = now();
  // Gradient rows live in a buffer kept between calls: fresh allocations this large are mmapped and
  // every call would pay page faults on first touch. (Calls are serialised by the lock.)
  static std::mutex rows_mutex;
  static std::unique_ptr<float[]> rows_buf;
  static size_t rows_cap = 0;
  std::lock_guard<std::mutex> lock(rows_mutex);
  if (rows_cap < size_t(M) * kGradCols) {
    rows_cap = size_t(M) * kGradCols + size_t(M) * kGradCols / 4 + 64;
    rows_buf.reset(new float[rows_cap]);
  }
  float* rows = rows_buf.get();
  std::vector<double> bg_tiles(3 * size_t(f.n_tiles));
  const auto* recs = reinterpret_cast<const GRec*>(recs_t.data_ptr<float>());
  const BwdIn in{g_image.data_ptr<float>(), g_alpha.data_ptr<float>(), g_depth.data_ptr<float>(),
                 T_final.data_ptr<float>(), background.data_ptr<float>(), last.data_ptr<int32_t>()};
  const int32_t* gid = gids.data_ptr<int32_t>();
  const int32_t* pos = pos_of.data_ptr<int32_t>();
  const int32_t* toff = tile_offsets.data_ptr<int32_t>();
#pragma omp parallel num_threads(nt) if(f.n_tiles > 1)
  {
    TileScratch scratch(f.ts * f.stride);
#pragma omp for schedule(dynamic, 1)
    for (int t = 0; t < f.n_tiles; ++t) backward_tile(t, f, recs, gid, toff, in, scratch, rows, bg_tiles.data());
  }
  const double t1 = now();
  auto g_means = torch::empty({N, 2}, torch::kFloat32), g_conics = torch::empty({N, 3}, torch::kFloat32);
  auto g_colors = torch::empty({N, 3}, torch::kFloat32), g_opac = torch::empty({N}, torch::kFloat32);
  auto g_depths = torch::empty({N}, torch::kFloat32);
  float *gm = g_means.data_ptr<float>(), *gcn = g_conics.data_ptr<float>(), *gcl = g_colors.data_ptr<float>();
  float *go = g_opac.data_ptr<float>(), *gd = g_depths.data_ptr<float>();
  const int32_t* off = goff.data_ptr<int32_t>();
#pragma omp parallel for schedule(static) num_threads(nt) if(N >= kParallelMin)
  for (int64_t g = 0; g < N; ++g) {
    float acc[kGradCols] = {0};
    for (int32_t k = off[g]; k < off[g + 1]; ++k) {  // fixed order: the Gaussian's tiles row-major
      // Rows are read in random order: prefetch far ahead (both cache lines a row may touch).
      if (k + kReducePrefetch < M) {
        const float* ahead = rows + int64_t(pos[k + kReducePrefetch]) * kGradCols;
        __builtin_prefetch(ahead), __builtin_prefetch(ahead + kGradCols - 1);
      }
      for (int c = 0; c < kGradCols; ++c) acc[c] += rows[int64_t(pos[k]) * kGradCols + c];
    }
    gm[2 * g] = acc[0], gm[2 * g + 1] = acc[1];
    gcn[3 * g] = acc[2], gcn[3 * g + 1] = acc[3], gcn[3 * g + 2] = acc[4];
    go[g] = acc[5];
    gcl[3 * g] = acc[6], gcl[3 * g + 1] = acc[7], gcl[3 * g + 2] = acc[8];
    gd[g] = acc[9];
  }
  double bgs[3] = {0, 0, 0};
  for (int t = 0; t < f.n_tiles; ++t)
    for (int k = 0; k < 3; ++k) bgs[k] += bg_tiles[3 * size_t(t) + k];
  auto g_bg = torch::tensor({float(bgs[0]), float(bgs[1]), float(bgs[2])}, torch::kFloat32);
  auto timings = torch::tensor({t1 - t0, now() - t1}, torch::kFloat64);
  return {g_means, g_conics, g_colors, g_opac, g_depths, g_bg, timings};
}

}  // namespace

void bind_project(pybind11::module& m);  // project_cpu.cpp
void bind_adam(pybind11::module& m);     // adam_cpu.cpp
void bind_ssim(pybind11::module& m);     // ssim_cpu.cpp

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "splat CPU kernels: compositing, projection + SH, visible-only Adam, SSIM (docs/RASTER_CONTRACT.md)";
  m.def("composite_forward", &forward,
        "composite forward: image, alpha, depth, then saved state and timings");
#ifdef SPLAT_STATS
  m.def("composite_stats", []() {
    std::vector<int64_t> v;
    for (auto& x : g_stats) v.push_back(x.exchange(0));
    return v;
  });
#endif
  m.def("composite_backward", &backward,
        "composite backward: grads of means2d, conics, colors, opacities, depths, bg");
  bind_project(m);
  bind_adam(m);
  bind_ssim(m);
}
