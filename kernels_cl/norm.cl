// Normalisation over rows: LayerNormalization, RMSNormalization (-DRMS),
// InstanceNormalization and GroupNormalization; and LRN.
//
// `rownorm` gives each row of L elements one work-group of WGS items: a
// local-memory tree reduces the mean, then the variance around it (two
// passes for accuracy), then every item writes its share of
// y = (x - mean) * rsqrt(var + eps) * scale + bias.  The scale/bias element
// for (row, j) is ((row % map.s0) * map.s1 + (j / map.s2) % map.s3), which
// covers per-element (LayerNorm), per-channel (InstanceNorm) and per-group or
// per-channel-within-group (GroupNorm) parameters.
#include "common.h"

#ifndef WGS
  #define WGS 64               // work-group size (a power of two)
#endif

inline float group_sum(__local float *scratch, float value)
{
    const int lid = get_local_id(0);
    scratch[lid] = value;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int width = WGS / 2; width > 0; width >>= 1) {
        if (lid < width)
            scratch[lid] += scratch[lid + width];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    const float total = scratch[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    return total;
}

#ifndef ROW_ITEM
__kernel void rownorm(__global const STORE_T *x, __global const STORE_T *scale,
                      __global const STORE_T *bias, __global STORE_T *y,
                      __global STORE_T *mean_out, __global STORE_T *inv_out,
                      const int L, const float eps, const int4 map)
{
    __local float scratch[WGS];
    const int row = get_group_id(0);
    const int lid = get_local_id(0);
    const int base = row * L;
    float mean = 0.0f;
#ifndef RMS
    float s = 0.0f;
    for (int j = lid; j < L; j += WGS)
        s += LOADF(x, base + j);
    mean = group_sum(scratch, s) / (float)L;
#endif
    float q = 0.0f, e = 0.0f;
    for (int j = lid; j < L; j += WGS) {
        const float d = LOADF(x, base + j) - mean;
        q += d * d;
        e += d;
    }
    float sq = group_sum(scratch, q);
#ifndef RMS
    // corrected two-pass (see rownorm_items)
    const float se = group_sum(scratch, e);
    mean += se / (float)L;
    sq -= se * se / (float)L;
#endif
    const float inv = rsqrt(max(sq, 0.0f) / (float)L + eps);
    const int pbase = (row % map.s0) * map.s1;
    for (int j = lid; j < L; j += WGS) {
        const int p = pbase + (j / map.s2) % map.s3;
        float v = (LOADF(x, base + j) - mean) * inv * LOADF(scale, p);
#ifdef HAS_BIAS
        v += LOADF(bias, p);
#endif
        STOREF(y, base + j, v);
    }
#ifdef STATS
    if (lid == 0) {
        STOREF(mean_out, row, mean);
        STOREF(inv_out, row, inv);
    }
#endif
}
#else

// -DROW_ITEM (CPUs): `rownorm_items`, one work-item per row, the same three
// passes in RW-wide vectors with no barrier (a CPU driver runs a work-group's
// items as a loop, each barrier a round of it).  The parameter index is
// constant over runs of map.s2 elements (InstanceNorm: the whole row) or,
// with -DPARAM_CONTIG (map.s2 == 1, map.s3 >= L: LayerNorm), runs along the
// row in vectors; the work-group kernel's division per element cost BERT's
// 128 x 256 LayerNorms 0.09 ms each.
#ifndef RW
  #define RW 8              // vector width along the row
#endif
#define RV CAT(float, RW)

inline float hsum(const RV v)
{
#if RW == 16
    const float8 h = v.lo + v.hi;
    const float4 q = h.lo + h.hi;
#elif RW == 8
    const float4 q = v.lo + v.hi;
#else
    const float4 q = v;
#endif
    return (q.s0 + q.s1) + (q.s2 + q.s3);
}

// y[j] = (x[j] - mean) * inv * scale[p] (+ bias[p]) for j in [j0, j1), p
// constant (prm >= 0) or pbase + j (prm < 0: PARAM_CONTIG)
inline void norm_run(__global const STORE_T *x, __global const STORE_T *scale,
                     __global const STORE_T *bias, __global STORE_T *y, const int j0,
                     const int j1, const float mean, const float inv, const int pbase)
{
    int j = j0;
#ifdef PARAM_CONTIG
    for (; j + RW <= j1; j += RW) {
        RV v = (LOADFN(RW, x, j) - mean) * inv * LOADFN(RW, scale, pbase + j);
  #ifdef HAS_BIAS
        v += LOADFN(RW, bias, pbase + j);
  #endif
        STOREFN(RW, y, j, v);
    }
    for (; j < j1; ++j) {
        float v = (LOADF(x, j) - mean) * inv * LOADF(scale, pbase + j);
  #ifdef HAS_BIAS
        v += LOADF(bias, pbase + j);
  #endif
        STOREF(y, j, v);
    }
#else
    // (x - mean) first: x * sc - mean * sc would cancel where the mean is
    // large against the spread
    const float sc = LOADF(scale, pbase) * inv;
  #ifdef HAS_BIAS
    const float bi = LOADF(bias, pbase);
  #else
    const float bi = 0.0f;
  #endif
    for (; j + RW <= j1; j += RW)
        STOREFN(RW, y, j, (LOADFN(RW, x, j) - mean) * sc + bi);
    for (; j < j1; ++j)
        STOREF(y, j, (LOADF(x, j) - mean) * sc + bi);
#endif
}

__kernel void rownorm_items(__global const STORE_T *x, __global const STORE_T *scale,
                            __global const STORE_T *bias, __global STORE_T *y,
                            __global STORE_T *mean_out, __global STORE_T *inv_out,
                            const int L, const float eps, const int4 map, const int rows)
{
    const int row = get_global_id(0);
    if (row >= rows)
        return;
    __global const STORE_T *xr = x + (size_t)row * L;
    __global STORE_T *yr = y + (size_t)row * L;
    const int Lv = L / RW * RW;
    float mean = 0.0f;
#ifndef RMS
    RV s = (RV)(0.0f);
    for (int j = 0; j < Lv; j += RW)
        s += LOADFN(RW, xr, j);
    float sum = hsum(s);
    for (int j = Lv; j < L; ++j)
        sum += LOADF(xr, j);
    mean = sum / (float)L;
#endif
    // corrected two-pass: the deviations' own sum e repairs the mean's
    // rounding (rows far from zero against their spread: |mean| / std of
    // 1e4 had left 3e-3 of error, onnxruntime's 5e-4)
    RV q = (RV)(0.0f), e = (RV)(0.0f);
    for (int j = 0; j < Lv; j += RW) {
        const RV d = LOADFN(RW, xr, j) - mean;
        q = d * d + q;
        e += d;
    }
    float sq = hsum(q), se = hsum(e);
    for (int j = Lv; j < L; ++j) {
        const float d = LOADF(xr, j) - mean;
        sq = d * d + sq;
        se += d;
    }
#ifndef RMS
    mean += se / (float)L;
    sq -= se * se / (float)L;
#endif
    const float inv = rsqrt(max(sq, 0.0f) / (float)L + eps);
    const int pbase = (row % map.s0) * map.s1;
#ifdef PARAM_CONTIG
    norm_run(xr, scale, bias, yr, 0, L, mean, inv, pbase);
#else
    for (int j0 = 0; j0 < L; j0 += map.s2)      // runs of one parameter
        norm_run(xr, scale, bias, yr, j0, min(L, j0 + map.s2), mean, inv,
                 pbase + (j0 / map.s2) % map.s3);
#endif
#ifdef STATS
    STOREF(mean_out, row, mean);
    STOREF(inv_out, row, inv);
#endif
}
#endif

// LRN across channels: x is (N, C, S) with S the flattened spatial size.
__kernel void lrn(__global const STORE_T *x, __global STORE_T *y, const int total,
                  const int C, const int S, const int before, const int after,
                  const float alpha_over_size, const float beta, const float bias)
{
    const int i = get_global_id(0);
    if (i >= total)
        return;
    const int c = (i / S) % C;
    const int lo = max(c - before, 0), hi = min(c + after, C - 1);
    float sum = 0.0f;
    for (int k = lo; k <= hi; ++k) {
        const float v = LOADF(x, i + (k - c) * S);
        sum += v * v;
    }
    STOREF(y, i, LOADF(x, i) / pow(bias + alpha_over_size * sum, beta));
}
