// Small fused ops: CausalConvWithState (a causal depthwise 1-D convolution
// that carries its last k-1 inputs as state) and SwiGLU.
#include "common.h"

#ifndef HAS_BIAS
  #define HAS_BIAS 0        // 1: a per-channel bias is added
#endif
#ifndef HAS_PAST
  #define HAS_PAST 0        // 1: past_state holds the k-1 inputs before this chunk
#endif
#ifndef SILU
  #define SILU 0            // 1: the output goes through x * sigmoid(x)
#endif

// The padded input of one channel row: past_state (or zeros), then the input.
inline float padded_at(__global const STORE_T *x, __global const STORE_T *past,
                       const long row, const int len, const int k, const int p)
{
    const int taps = k - 1;
    if (p >= taps)
        return LOADF(x, row * len + p - taps);
#if HAS_PAST
    return LOADF(past, row * taps + p);
#else
    return 0.0f;
#endif
}

// gsize (len + k - 1, batch * channels): items below len write the output,
// the last k - 1 write present_state.
__kernel void causal_conv(__global const STORE_T *x, __global const STORE_T *w,
                          __global const STORE_T *bias, __global const STORE_T *past,
                          __global STORE_T *y, __global STORE_T *present,
                          const int channels, const int len, const int k)
{
    const int t = get_global_id(0);
    const long row = get_global_id(1);
    const int c = (int)(row % channels);
    const int taps = k - 1;
    if (t >= len) {
        // present_state: the last k - 1 positions of the padded input
        const int j = t - len;
        STOREF(present, row * taps + j, padded_at(x, past, row, len, k, len + j));
        return;
    }
    float acc = HAS_BIAS ? LOADF(bias, c) : 0.0f;
    for (int j = 0; j < k; ++j)
        acc += LOADF(w, (long)c * k + j) * padded_at(x, past, row, len, k, t + j);
#if SILU
    acc = acc / (1.0f + exp(-acc));
#endif
    STOREF(y, row * len + t, acc);
}

__kernel void swiglu(__global const STORE_T *a, __global const STORE_T *b,
                     __global STORE_T *y, const float alpha, const int n)
{
    const int i = get_global_id(0);
    if (i >= n)
        return;
    const float va = LOADF(a, i);
    STOREF(y, i, va / (1.0f + exp(-alpha * va)) * LOADF(b, i));
}

// LinearAttention: the recurrence S_t = g S_{t-1} + k_t (x) v'_t with
// v'_t = v_t (linear, gated) or beta_t (v_t - g S_{t-1}^T k_t) (delta rules),
// o_t = scale q_t^T S_t.  Every update and read of column m of S involves
// only that column, so one work-item per (value column, kv head, batch) runs
// all T steps alone, its column kept in float in `state` (d_k floats).
#ifndef GATED
  #define GATED 0           // 1: S is scaled by exp(decay_t) before each update
#endif
#ifndef DELTA
  #define DELTA 0           // 1: the delta rule (needs beta)
#endif
#ifndef DECAY_PER_KEY
  #define DECAY_PER_KEY 0   // 1: decay is (B, T, H_kv * d_k), else (B, T, H_kv)
#endif
#ifndef BETA_PER_HEAD
  #define BETA_PER_HEAD 1   // 1: beta is (B, T, H_kv), 0: (B, T, 1)
#endif

__kernel void linear_attention(__global const STORE_T *q, __global const STORE_T *k,
                               __global const STORE_T *v, __global const STORE_T *past,
                               __global const STORE_T *decay, __global const STORE_T *beta,
                               __global STORE_T *out, __global STORE_T *present,
                               __global float *state, const int steps, const int heads_q,
                               const int heads_kv, const int dk, const int dv,
                               const float scale)
{
    const int m = get_global_id(0);
    const int h = get_global_id(1);
    const int b = get_global_id(2);
    if (m >= dv)
        return;
    const int group = heads_q / heads_kv;
    const long head = (long)b * heads_kv + h;
    __global float *col = state + head * dk * dv + m;   // S[d][m] at col[d * dv]
    for (int d = 0; d < dk; ++d)
        col[(long)d * dv] = HAS_PAST ? LOADF(past, (head * dk + d) * dv + m) : 0.0f;
    for (int t = 0; t < steps; ++t) {
        const long bt = (long)b * steps + t;
        const long k_row = (bt * heads_kv + h) * dk;
#if GATED
        for (int d = 0; d < dk; ++d) {
            const long g = DECAY_PER_KEY ? k_row + d : bt * heads_kv + h;
            col[(long)d * dv] *= exp(LOADF(decay, g));
        }
#endif
        float update = LOADF(v, (bt * heads_kv + h) * dv + m);
#if DELTA
        float retrieved = 0.0f;
        for (int d = 0; d < dk; ++d)
            retrieved += col[(long)d * dv] * LOADF(k, k_row + d);
        update = LOADF(beta, BETA_PER_HEAD ? bt * heads_kv + h : bt) * (update - retrieved);
#endif
        for (int d = 0; d < dk; ++d)
            col[(long)d * dv] += LOADF(k, k_row + d) * update;
        for (int j = 0; j < group; ++j) {
            const int hq = h * group + j;
            const long q_row = (bt * heads_q + hq) * dk;
            float acc = 0.0f;
            for (int d = 0; d < dk; ++d)
                acc += LOADF(q, q_row + d) * col[(long)d * dv];
            STOREF(out, (bt * heads_q + hq) * dv + m, scale * acc);
        }
    }
    for (int d = 0; d < dk; ++d)
        STOREF(present, (head * dk + d) * dv + m, col[(long)d * dv]);
}
