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
    float q = 0.0f;
    for (int j = lid; j < L; j += WGS) {
        const float d = LOADF(x, base + j) - mean;
        q += d * d;
    }
    const float inv = rsqrt(group_sum(scratch, q) / (float)L + eps);
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
