// Eight-lane float/int vectors (GCC/Clang vector extensions) and the few helpers the CPU
// compositing kernel needs: fused multiply-add, lane masks, exp, horizontal sums.
// With AVX2/FMA these map to single instructions; elsewhere the compiler lowers them.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define SPLAT_AVX2 1
#endif

namespace simd8 {

constexpr int kLanes = 8;
typedef float vf __attribute__((vector_size(32)));
typedef int32_t vi __attribute__((vector_size(32)));

static inline vf splat(float x) { return vf{x, x, x, x, x, x, x, x}; }
static inline vi splat_i(int32_t x) { return vi{x, x, x, x, x, x, x, x}; }
static inline vf load(const float* p) { vf v; std::memcpy(&v, p, sizeof v); return v; }
static inline vi load_i(const int32_t* p) { vi v; std::memcpy(&v, p, sizeof v); return v; }
static inline void store(float* p, vf v) { std::memcpy(p, &v, sizeof v); }
static inline void store_i(int32_t* p, vi v) { std::memcpy(p, &v, sizeof v); }
static inline vf select(vi m, vf a, vf b) { return m ? a : b; }
static inline vi select_i(vi m, vi a, vi b) { return m ? a : b; }

// a * b + c, fused where the CPU has FMA (used only where the contract allows rounding freedom).
static inline vf fmadd(vf a, vf b, vf c) {
#ifdef SPLAT_AVX2
  return (vf)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c);
#else
  return a * b + c;
#endif
}

static inline vf vmax(vf a, vf b) { return a > b ? a : b; }
static inline vf vmin(vf a, vf b) { return a < b ? a : b; }
static inline vf vabs(vf a) { return a < 0.0f ? -a : a; }
static inline vi to_int(vf a) { return __builtin_convertvector(a, vi); }  // truncates

static inline vf vsqrt(vf a) {
#ifdef SPLAT_AVX2
  return (vf)_mm256_sqrt_ps((__m256)a);
#else
  for (int i = 0; i < kLanes; ++i) a[i] = __builtin_sqrtf(a[i]);
  return a;
#endif
}

static inline vf vfloor(vf a) {
#ifdef SPLAT_AVX2
  return (vf)_mm256_floor_ps((__m256)a);
#else
  for (int i = 0; i < kLanes; ++i) a[i] = __builtin_floorf(a[i]);
  return a;
#endif
}

static inline vf vceil(vf a) {
#ifdef SPLAT_AVX2
  return (vf)_mm256_ceil_ps((__m256)a);
#else
  for (int i = 0; i < kLanes; ++i) a[i] = __builtin_ceilf(a[i]);
  return a;
#endif
}

// Bit i set when lane i of the mask is set.
static inline int movemask(vi m) {
#ifdef SPLAT_AVX2
  return _mm256_movemask_ps((__m256)m);
#else
  int bits = 0;
  for (int i = 0; i < kLanes; ++i) bits |= (m[i] != 0) << i;
  return bits;
#endif
}

// exp of an input already clamped to [-87, 88]: the shared body of exp_neg and exp_any.
static inline vf exp_clamped(vf xc) {
  const vf magic = splat(12582912.0f);  // 1.5 * 2^23: adding it rounds to an integer (in the low bits)
  const vf shifted = xc * 1.44269504088896341f + magic;
  const vf n = shifted - magic;
  const vf r = fmadd(n, splat(2.12194440e-4f), fmadd(n, splat(-0.693359375f), xc));  // ln2 split in two
  vf p = splat(1.0f / 5040.0f);
  p = fmadd(p, r, splat(1.0f / 720.0f));
  p = fmadd(p, r, splat(1.0f / 120.0f));
  p = fmadd(p, r, splat(1.0f / 24.0f));
  p = fmadd(p, r, splat(1.0f / 6.0f));
  p = fmadd(p, r, splat(0.5f));
  p = fmadd(p, r, splat(1.0f));
  p = fmadd(p, r, splat(1.0f));
  vi bits, magic_bits;
  std::memcpy(&bits, &shifted, sizeof bits);
  std::memcpy(&magic_bits, &magic, sizeof magic_bits);
  bits = (bits - magic_bits + 127) << 23;  // 2^n
  vf scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

// exp(x) for x <= 0 (the kernel only needs exp(-sigma), sigma >= 0), accurate to about one ulp,
// exp(0) == 1 exactly. Always finite: x is clamped to [-87, 0] (below -87 the result, ~1e-38, is far
// under any alpha threshold; x > 0 comes from a negative sigma that the caller masks out; NaN -> -87).
// x = n ln2 + r with |r| <= ln2/2; exp(r) by its Taylor series to degree 7 (truncation < 6e-9).
static inline vf exp_neg(vf x) { return exp_clamped(vmin(x > -87.0f ? x : splat(-87.0f), splat(0.0f))); }

// exp(x) on [-87, 88] (inputs outside are clamped; NaN -> -87), same method and accuracy as exp_neg.
// Used for scales exp(log_scale), which may be > 1.
static inline vf exp_any(vf x) { return exp_clamped(vmin(x > -87.0f ? x : splat(-87.0f), splat(88.0f))); }

// In-place transpose of an 8x8 block: r[i][j] <- r[j][i].
__attribute__((always_inline)) static inline void transpose8(vf* r) {
#ifdef SPLAT_AVX2
  __m256 t[8], u[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps((__m256)r[i], (__m256)r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps((__m256)r[i], (__m256)r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
    u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
    u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
  }
  for (int i = 0; i < 4; ++i) {
    r[i] = (vf)_mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
    r[i + 4] = (vf)_mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
  }
#else
  for (int i = 0; i < 8; ++i)
    for (int j = i + 1; j < 8; ++j) {
      const float x = r[i][j];
      r[i][j] = r[j][i];
      r[j][i] = x;
    }
#endif
}

// Store the first n (0..8) lanes of v to p.
static inline void store_first(float* p, vf v, int n) {
  if (n == kLanes) return store(p, v);
#ifdef SPLAT_AVX2
  const vi lanes = vi{0, 1, 2, 3, 4, 5, 6, 7} < n;
  _mm256_maskstore_ps(p, (__m256i)lanes, (__m256)v);
#else
  for (int i = 0; i < n; ++i) p[i] = v[i];
#endif
}

// Lane sums of v[0..7] in a fixed order, written to out[0..7].
static inline void hsum8(const vf* v, float* out) {
#ifdef SPLAT_AVX2
  const __m256 s01 = _mm256_hadd_ps((__m256)v[0], (__m256)v[1]);
  const __m256 s23 = _mm256_hadd_ps((__m256)v[2], (__m256)v[3]);
  const __m256 s45 = _mm256_hadd_ps((__m256)v[4], (__m256)v[5]);
  const __m256 s67 = _mm256_hadd_ps((__m256)v[6], (__m256)v[7]);
  const __m256 s03 = _mm256_hadd_ps(s01, s23);
  const __m256 s47 = _mm256_hadd_ps(s45, s67);
  const __m256 lo = _mm256_permute2f128_ps(s03, s47, 0x20);
  const __m256 hi = _mm256_permute2f128_ps(s03, s47, 0x31);
  _mm256_storeu_ps(out, _mm256_add_ps(lo, hi));
#else
  for (int k = 0; k < 8; ++k) {
    float s = 0.0f;
    for (int i = 0; i < kLanes; ++i) s += v[k][i];
    out[k] = s;
  }
#endif
}

static inline float hsum(vf v) {
  float s = 0.0f;
  for (int i = 0; i < kLanes; ++i) s += v[i];
  return s;
}

}  // namespace simd8
