// Vector helpers for the fused CPU kernels (cpu_attention.cc, cpu_ops.cc): 16 fp32 lanes
// in GCC's vector extension, and a polynomial exp. Internal to models/dit.
//
// The kernels that use them are declared DGRPO_CLONES: GCC compiles one copy each for
// AVX-512, AVX2 and baseline x86-64 and the loader picks the one the CPU runs. The helpers
// are always inlined into those copies, so each is built for its instruction set.
#ifndef DANCEGRPO_MODELS_DIT_SIMD_H_
#define DANCEGRPO_MODELS_DIT_SIMD_H_

#include <cstdint>
#include <cstring>

namespace dancegrpo::models::simd {

// 16 floats; GCC lowers it to one AVX-512 register, two AVX2 ones or four SSE ones, per clone.
typedef float V16 __attribute__((vector_size(64)));
typedef int32_t I16 __attribute__((vector_size(64)));
constexpr int kLanes = 16;

#define DGRPO_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
// The helpers are inlined into each clone, so they take its instruction set (a call across
// clones would pass the vectors under two different ABIs).
#define DGRPO_INLINE inline __attribute__((always_inline))

DGRPO_INLINE V16 Load(const float* p) {
  V16 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
DGRPO_INLINE void Store(float* p, V16 v) { std::memcpy(p, &v, sizeof(v)); }
DGRPO_INLINE V16 Splat(float x) { return V16{} + x; }
// The first n lanes of p, the rest `fill`.
DGRPO_INLINE V16 LoadPartial(const float* p, int n, float fill) {
  alignas(64) float buf[kLanes];
  for (int i = 0; i < kLanes; ++i) buf[i] = i < n ? p[i] : fill;
  return Load(buf);
}
DGRPO_INLINE void StorePartial(float* p, V16 v, int n) {
  alignas(64) float buf[kLanes];
  Store(buf, v);
  for (int i = 0; i < n; ++i) p[i] = buf[i];
}
DGRPO_INLINE float Sum(V16 v) {
  float s = 0;
  for (int i = 0; i < kLanes; ++i) s += v[i];
  return s;
}
DGRPO_INLINE float Max(V16 v) {
  float m = v[0];
  for (int i = 1; i < kLanes; ++i) m = v[i] > m ? v[i] : m;
  return m;
}

// Cephes' expf: x = n ln2 + r with |r| <= ln2 / 2 (n rounded to nearest by the 1.5 * 2^23
// trick), a degree-5 polynomial for e^r, and 2^n built in the exponent bits. 0 below -87.
DGRPO_INLINE V16 ExpNonPositive(V16 x) {
  const V16 lo = Splat(-87.0f);
  const auto tiny = x < lo;
  x = tiny ? lo : x;
  const V16 magic = Splat(12582912.0f);
  V16 n = (x * Splat(1.44269504088896341f) + magic) - magic;
  V16 r = x - n * Splat(0.693359375f) - n * Splat(-2.12194440e-4f);
  V16 r2 = r * r;
  V16 y = Splat(1.9875691500e-4f);
  y = y * r + Splat(1.3981999507e-3f);
  y = y * r + Splat(8.3334519073e-3f);
  y = y * r + Splat(4.1665795894e-2f);
  y = y * r + Splat(1.6666665459e-1f);
  y = y * r + Splat(5.0000001201e-1f);
  y = y * r2 + r + Splat(1.0f);
  const I16 bits = (__builtin_convertvector(n, I16) + 127) << 23;
  V16 scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  y = y * scale;
  return tiny ? Splat(0.0f) : y;
}

}  // namespace dancegrpo::models::simd

#endif  // DANCEGRPO_MODELS_DIT_SIMD_H_
