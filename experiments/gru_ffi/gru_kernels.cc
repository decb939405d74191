// A fused GRU recurrence for XLA's CPU backend (jax.ffi), forward and backward.
//
// Same math as quickstudy.networks.recurrent.gru_sequence: one kernel runs all T steps, so the
// loop costs one kernel launch instead of several per step. The per-step matrix products are
// register-blocked with GCC vector extensions; the gate math is auto-vectorised (libmvec).
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

typedef float v16 __attribute__((vector_size(64)));

inline v16 load(const float* p) {
  v16 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
inline void store(float* p, v16 v) { std::memcpy(p, &v, sizeof(v)); }

// C[r, :] += A[r, :K] @ W[K, N] for r < rows; A has row stride lda, C row stride ldc.
void matmul_acc(const float* A, int64_t lda, const float* W, int64_t K, int64_t N, float* C,
                int64_t ldc, int64_t rows) {
  int64_t r = 0;
  if (N % 64 == 0) {
    for (; r + 4 <= rows; r += 4) {
      const float* a0 = A + r * lda;
      const float* a1 = a0 + lda;
      const float* a2 = a1 + lda;
      const float* a3 = a2 + lda;
      for (int64_t j = 0; j < N; j += 64) {
        v16 c[4][4];
        for (int q = 0; q < 4; ++q)
          for (int v = 0; v < 4; ++v) c[q][v] = load(C + (r + q) * ldc + j + 16 * v);
        for (int64_t k = 0; k < K; ++k) {
          const float* w = W + k * N + j;
          v16 w0 = load(w), w1 = load(w + 16), w2 = load(w + 32), w3 = load(w + 48);
          float s[4] = {a0[k], a1[k], a2[k], a3[k]};
          for (int q = 0; q < 4; ++q) {
            c[q][0] += s[q] * w0;
            c[q][1] += s[q] * w1;
            c[q][2] += s[q] * w2;
            c[q][3] += s[q] * w3;
          }
        }
        for (int q = 0; q < 4; ++q)
          for (int v = 0; v < 4; ++v) store(C + (r + q) * ldc + j + 16 * v, c[q][v]);
      }
    }
  }
  for (; r < rows; ++r) {
    const float* a = A + r * lda;
    float* c = C + r * ldc;
    for (int64_t k = 0; k < K; ++k) {
      const float s = a[k];
      const float* w = W + k * N;
#pragma omp simd
      for (int64_t j = 0; j < N; ++j) c[j] += s * w[j];
    }
  }
}

inline float sigmoid(float x) { return 0.5f * std::tanh(0.5f * x) + 0.5f; }

ffi::Error GruForward(ffi::Buffer<ffi::F32> w_h, ffi::Buffer<ffi::F32> b_h,
                      ffi::Buffer<ffi::F32> g_r, ffi::Buffer<ffi::F32> g_z,
                      ffi::Buffer<ffi::F32> g_n, ffi::Buffer<ffi::PRED> start,
                      ffi::Buffer<ffi::F32> h0, ffi::ResultBuffer<ffi::F32> h_last,
                      ffi::ResultBuffer<ffi::F32> hs, ffi::ResultBuffer<ffi::F32> h_prev,
                      ffi::ResultBuffer<ffi::F32> r_out, ffi::ResultBuffer<ffi::F32> z_out,
                      ffi::ResultBuffer<ffi::F32> n_out, ffi::ResultBuffer<ffi::F32> ghn_out) {
  auto dims = g_r.dimensions();
  if (dims.size() != 3) return ffi::Error::InvalidArgument("gate inputs must be [T, B, H]");
  const int64_t T = dims[0], B = dims[1], H = dims[2], G = 3 * H;
  const float* W = w_h.typed_data();
  const float* bias = b_h.typed_data();
  const bool* st = start.typed_data();
  std::vector<float> gh(B * G);
  std::vector<float> h(h0.typed_data(), h0.typed_data() + B * H);
  for (int64_t t = 0; t < T; ++t) {
    const int64_t o = t * B * H;
    float* hp = h_prev->typed_data() + o;
    for (int64_t b = 0; b < B; ++b) {
      const bool s = st[t * B + b];
      for (int64_t i = 0; i < H; ++i) hp[b * H + i] = s ? 0.0f : h[b * H + i];
      std::memcpy(gh.data() + b * G, bias, G * sizeof(float));
    }
#ifndef QS_NO_MATMUL
    matmul_acc(hp, H, W, H, G, gh.data(), G, B);
#endif
    const float* gr = g_r.typed_data() + o;
    const float* gz = g_z.typed_data() + o;
    const float* gn = g_n.typed_data() + o;
    float* ro = r_out->typed_data() + o;
    float* zo = z_out->typed_data() + o;
    float* no = n_out->typed_data() + o;
    float* go = ghn_out->typed_data() + o;
    float* ho = hs->typed_data() + o;
    for (int64_t b = 0; b < B; ++b) {
      const float* g = gh.data() + b * G;
      const int64_t e = b * H;
#pragma omp simd
      for (int64_t i = 0; i < H; ++i) {
#ifdef QS_NO_GATES
        const float r = gr[e + i] + g[i];
        const float z = gz[e + i] + g[H + i];
        const float ghn = g[2 * H + i];
        const float n = gn[e + i] + r * ghn;
#else
        const float r = sigmoid(gr[e + i] + g[i]);
        const float z = sigmoid(gz[e + i] + g[H + i]);
        const float ghn = g[2 * H + i];
        const float n = std::tanh(gn[e + i] + r * ghn);
#endif
        const float hn = (1.0f - z) * n + z * hp[e + i];
        ro[e + i] = r;
        zo[e + i] = z;
        no[e + i] = n;
        go[e + i] = ghn;
        ho[e + i] = hn;
        h[e + i] = hn;
      }
    }
  }
  std::memcpy(h_last->typed_data(), h.data(), B * H * sizeof(float));
  return ffi::Error::Success();
}

ffi::Error GruBackward(ffi::Buffer<ffi::F32> w_h, ffi::Buffer<ffi::PRED> start,
                       ffi::Buffer<ffi::F32> h_prev, ffi::Buffer<ffi::F32> r_in,
                       ffi::Buffer<ffi::F32> z_in, ffi::Buffer<ffi::F32> n_in,
                       ffi::Buffer<ffi::F32> ghn_in, ffi::Buffer<ffi::F32> dh_last,
                       ffi::Buffer<ffi::F32> dys, ffi::ResultBuffer<ffi::F32> dh0,
                       ffi::ResultBuffer<ffi::F32> da_r, ffi::ResultBuffer<ffi::F32> da_z,
                       ffi::ResultBuffer<ffi::F32> da_n, ffi::ResultBuffer<ffi::F32> dgh_n) {
  auto dims = h_prev.dimensions();
  if (dims.size() != 3) return ffi::Error::InvalidArgument("residuals must be [T, B, H]");
  const int64_t T = dims[0], B = dims[1], H = dims[2], G = 3 * H;
  const float* W = w_h.typed_data();
  std::vector<float> wt(G * H);  // W_hᵀ [3H, H]
  for (int64_t k = 0; k < H; ++k)
    for (int64_t j = 0; j < G; ++j) wt[j * H + k] = W[k * G + j];
  const bool* st = start.typed_data();
  std::vector<float> dh(dh_last.typed_data(), dh_last.typed_data() + B * H);
  std::vector<float> d(B * G);  // [da_r, da_z, dgh_n] per row
  std::vector<float> next(B * H);
  for (int64_t t = T - 1; t >= 0; --t) {
    const int64_t o = t * B * H;
    const float* hp = h_prev.typed_data() + o;
    const float* r = r_in.typed_data() + o;
    const float* z = z_in.typed_data() + o;
    const float* n = n_in.typed_data() + o;
    const float* ghn = ghn_in.typed_data() + o;
    const float* dy = dys.typed_data() + o;
    float* dr = da_r->typed_data() + o;
    float* dz = da_z->typed_data() + o;
    float* dn = da_n->typed_data() + o;
    float* dg = dgh_n->typed_data() + o;
    for (int64_t b = 0; b < B; ++b) {
      const int64_t e = b * H;
      float* db = d.data() + b * G;
#pragma omp simd
      for (int64_t i = 0; i < H; ++i) {
        const float g = dh[e + i] + dy[e + i];
        const float zi = z[e + i], ni = n[e + i], ri = r[e + i];
        const float an = g * (1.0f - zi) * (1.0f - ni * ni);
        const float az = g * (hp[e + i] - ni) * zi * (1.0f - zi);
        const float ar = an * ghn[e + i] * ri * (1.0f - ri);
        const float gn = an * ri;
        dr[e + i] = ar;
        dz[e + i] = az;
        dn[e + i] = an;
        dg[e + i] = gn;
        db[i] = ar;
        db[H + i] = az;
        db[2 * H + i] = gn;
        next[e + i] = g * zi;
      }
    }
    matmul_acc(d.data(), G, wt.data(), G, H, next.data(), H, B);
    for (int64_t b = 0; b < B; ++b) {
      const bool s = st[t * B + b];
      for (int64_t i = 0; i < H; ++i) dh[b * H + i] = s ? 0.0f : next[b * H + i];
    }
  }
  std::memcpy(dh0->typed_data(), dh.data(), B * H * sizeof(float));
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(qs_gru_forward, GruForward,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::PRED>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(qs_gru_backward, GruBackward,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::PRED>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());
