// Softmax (or -DLOG_SOFTMAX) along one axis of length L; rows are (outer,
// inner) pairs, the axis stride is `inner`.  Max-subtracted, float math.
#include "common.h"

__kernel void softmax(__global const STORE_T *x, __global STORE_T *y,
                      const int rows, const int L, const int inner)
{
    const int r = get_global_id(0);
    if (r >= rows)
        return;
    const int base = (r / inner) * L * inner + r % inner;
    float mx = -INFINITY;
    for (int i = 0; i < L; ++i) {
        const float v = LOADF(x, base + i * inner);
        mx = FMAX(mx, v);
    }
    float sum = 0.0f;
#ifdef LOG_SOFTMAX
    for (int i = 0; i < L; ++i)
        sum += exp(LOADF(x, base + i * inner) - mx);
    const float lse = log(sum);
    for (int i = 0; i < L; ++i)
        STOREF(y, base + i * inner, LOADF(x, base + i * inner) - mx - lse);
#else
    // keep exp(x - max) in y so each exp is computed once
    for (int i = 0; i < L; ++i) {
        const float e = exp(LOADF(x, base + i * inner) - mx);
        sum += e;
        STOREF(y, base + i * inner, e);
    }
    const float inv = 1.0f / sum;
    for (int i = 0; i < L; ++i)
        STOREF(y, base + i * inner, LOADF(y, base + i * inner) * inv);
#endif
}

// Softmax (or -DLOG_SOFTMAX) of contiguous rows (inner == 1), one row per
// work-item in float8 vectors along the row, for CPU devices: the
// one-row-per-work-item kernel above, vectorised by the driver across rows,
// reads with gathers L elements apart (BERT's 128-wide attention rows:
// 0.5-0.65 ms for 4 x 128 rows).
#ifdef STORE_HALF
  // two halves: a vload_half8 crashed one CPU compiler (pool.cl)
  #define LOAD8(p, i) ((float8)(LOADFN(4, p, i), LOADFN(4, p, (i) + 4)))
#else
  #define LOAD8(p, i) LOADFN(8, p, i)
#endif

inline float max8(const float8 v)
{
    const float4 m = FMAX(v.lo, v.hi);
    const float m0 = FMAX(m.s0, m.s1), m1 = FMAX(m.s2, m.s3);
    return FMAX(m0, m1);
}

inline float sum8(const float8 v)
{
    const float4 m = v.lo + v.hi;
    return (m.s0 + m.s1) + (m.s2 + m.s3);
}

__kernel void softmax_rows(__global const STORE_T *x, __global STORE_T *y,
                           const int rows, const int L)
{
    const int r = get_global_id(0);
    if (r >= rows)
        return;
    __global const STORE_T *p = x + (size_t)r * L;
    __global STORE_T *q = y + (size_t)r * L;
    const int L8 = L & ~7;
    float8 m8 = (float8)(-INFINITY);
    for (int i = 0; i < L8; i += 8) {
        const float8 v = LOAD8(p, i);
        m8 = FMAX(m8, v);
    }
    float mx = max8(m8);
    for (int i = L8; i < L; ++i) {
        const float v = LOADF(p, i);
        mx = FMAX(mx, v);
    }
    float8 s8 = (float8)(0.0f);
    float sum = 0.0f;
#ifdef LOG_SOFTMAX
    for (int i = 0; i < L8; i += 8)
        s8 += exp(LOAD8(p, i) - mx);
    for (int i = L8; i < L; ++i)
        sum += exp(LOADF(p, i) - mx);
    const float shift = mx + log(sum + sum8(s8));
    for (int i = 0; i < L8; i += 8)
        STOREFN(8, q, i, LOAD8(p, i) - shift);
    for (int i = L8; i < L; ++i)
        STOREF(q, i, LOADF(p, i) - shift);
#else
    for (int i = 0; i < L8; i += 8) {       // exp(x - max) kept in y
        const float8 e = exp(LOAD8(p, i) - mx);
        s8 += e;
        STOREFN(8, q, i, e);
    }
    for (int i = L8; i < L; ++i) {
        const float e = exp(LOADF(p, i) - mx);
        sum += e;
        STOREF(q, i, e);
    }
    const float inv = 1.0f / (sum + sum8(s8));
    for (int i = 0; i < L8; i += 8)
        STOREFN(8, q, i, LOAD8(q, i) * inv);
    for (int i = L8; i < L; ++i)
        STOREF(q, i, LOADF(q, i) * inv);
#endif
}

// Hardmax: 1 at the first maximum of each row, 0 elsewhere.
__kernel void hardmax(__global const STORE_T *x, __global STORE_T *y,
                      const int rows, const int L, const int inner)
{
    const int r = get_global_id(0);
    if (r >= rows)
        return;
    const int base = (r / inner) * L * inner + r % inner;
    float mx = -INFINITY;
    int best = 0;
    for (int i = 0; i < L; ++i) {
        const float v = LOADF(x, base + i * inner);
        if (v > mx || (v != v && mx == mx)) {  // the first NaN wins, as np.argmax
            mx = v;
            best = i;
        }
    }
    for (int i = 0; i < L; ++i)
        STOREF(y, base + i * inner, i == best ? 1.0f : 0.0f);
}

// Softmax (or -DLOG_SOFTMAX) along an axis with 8 or more contiguous
// elements after it (inner % 8 == 0: a segmenter's softmax over channels):
// a work-item takes 8 neighbouring columns of one outer index and walks the
// axis with float8 loads (one column per work-item walked it with scalar
// exp: 1x80x3000 over axis 1 took 2 ms).
__kernel void softmax_cols(__global const STORE_T *x, __global STORE_T *y,
                           const int cols, const int L, const int inner)
{
    const int c = get_global_id(0);
    if (c >= cols)
        return;
    const int per = inner / 8;
    const int base = (c / per) * L * inner + (c % per) * 8;
    float8 mx = (float8)(-INFINITY);
    for (int i = 0; i < L; ++i)
        mx = FMAX(mx, LOAD8(x, base + i * inner));
    float8 sum = (float8)(0.0f);
#ifdef LOG_SOFTMAX
    for (int i = 0; i < L; ++i)
        sum += exp(LOAD8(x, base + i * inner) - mx);
    const float8 shift = mx + log(sum);
    for (int i = 0; i < L; ++i)
        STOREFN(8, y, base + i * inner, LOAD8(x, base + i * inner) - shift);
#else
    for (int i = 0; i < L; ++i) {
        const float8 e = exp(LOAD8(x, base + i * inner) - mx);
        sum += e;
        STOREFN(8, y, base + i * inner, e);
    }
    const float8 inv = 1.0f / sum;
    for (int i = 0; i < L; ++i)
        STOREFN(8, y, base + i * inner, LOAD8(y, base + i * inner) * inv);
#endif
}
