// Reductions over any set of axes, ArgMax/ArgMin, CumSum and TopK.
//
// The host splits the input's dims into kept dims (kshape/kstride, which
// enumerate output elements) and reduced dims (rshape/rstride, which
// enumerate the R elements of one output), each merged where contiguous.
// `reduce` runs one work-group of WGS items per output with a local-memory
// tree when rows are long (-DGROUP), else one work-item per output looping
// over its row.  The op is chosen by INIT / PRE(v) / COMBINE(acc, v) /
// POST(acc, n) defines; -DLSE does a max pass first for LogSumExp.
#include "common.h"

#ifndef WGS
  #define WGS 64               // work-group size of the GROUP variant
#endif
#ifndef KRANK
  #define KRANK 1              // kept dims after merging (1..8)
#endif
#ifndef RRANK
  #define RRANK 1              // reduced dims after merging (1..8)
#endif
#ifndef CT
  #define CT float             // accumulation type
#endif
#ifndef INIT
  #define INIT 0.0f            // the reduction's identity
#endif
#ifndef PRE
  #define PRE(v) (v)           // applied to every element before combining
#endif
#ifndef COMBINE
  #define COMBINE(acc, v) ((acc) + (v))
#endif
#ifndef POST
  #define POST(acc, n) (acc)   // applied to the result (n = elements reduced)
#endif
// Storage: float tensors in STORE_T by default; -DIN_RAW -DIN_T=long (and
// OUT_RAW/OUT_T) make a tensor a plain array of that C type.
#ifdef IN_RAW
  #define T_IN IN_T
  #define LD_IN(p, i) ((CT)(p)[i])
#else
  #define T_IN STORE_T
  #define LD_IN(p, i) ((CT)LOADF(p, i))
#endif
#ifdef OUT_RAW
  #define T_OUT OUT_T
  #define ST_OUT(p, i, v) ((p)[i] = (OUT_T)(v))
#else
  #define T_OUT STORE_T
  #define ST_OUT(p, i, v) STOREF(p, i, (float)(v))
#endif

#define KSTEP(d)                                             \
    if (KRANK > d) {                                         \
        off += (rem % kshape.s##d) * kstride.s##d;           \
        rem /= kshape.s##d;                                  \
    }
#define RSTEP(d)                                             \
    if (RRANK > d) {                                         \
        off += (rem % rshape.s##d) * rstride.s##d;           \
        rem /= rshape.s##d;                                  \
    }

inline int kept_offset(int o, const int8 kshape, const int8 kstride)
{
    int rem = o, off = 0;
    KSTEP(7) KSTEP(6) KSTEP(5) KSTEP(4) KSTEP(3) KSTEP(2) KSTEP(1) KSTEP(0)
    return off;
}

inline int reduced_offset(int j, const int8 rshape, const int8 rstride)
{
    int rem = j, off = 0;
    RSTEP(7) RSTEP(6) RSTEP(5) RSTEP(4) RSTEP(3) RSTEP(2) RSTEP(1) RSTEP(0)
    return off;
}

// Combine this item's share of the row (j = first, first + step, ...).
inline CT partial(__global const T_IN *x, int base, int first, int step, int R,
                  const int8 rshape, const int8 rstride, CT shift)
{
    CT acc = INIT;
    for (int j = first; j < R; j += step) {
        const CT v = LD_IN(x, base + reduced_offset(j, rshape, rstride));
#ifdef LSE
        acc = COMBINE(acc, exp(v - shift));
#else
        acc = COMBINE(acc, PRE(v));
#endif
    }
    return acc;
}

#ifdef GROUP
inline CT group_combine(__local CT *scratch, CT acc)
{
    const int lid = get_local_id(0);
    scratch[lid] = acc;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int width = WGS / 2; width > 0; width >>= 1) {
        if (lid < width)
            scratch[lid] = COMBINE(scratch[lid], scratch[lid + width]);
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    const CT result = scratch[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    return result;
}
#endif

#ifdef LSE
inline CT row_max(__global const T_IN *x, int base, int first, int step, int R,
                  const int8 rshape, const int8 rstride)
{
    CT m = -INFINITY;
    for (int j = first; j < R; j += step)
        m = FMAX(m, LD_IN(x, base + reduced_offset(j, rshape, rstride)));
    return m;
}
#endif

__kernel void reduce(__global const T_IN *x, __global T_OUT *y, const int nout, const int R,
                     const int8 kshape, const int8 kstride, const int8 rshape,
                     const int8 rstride)
{
#ifdef GROUP
    __local CT scratch[WGS];
    const int o = get_group_id(0);
    const int first = get_local_id(0), step = WGS;
#else
    const int o = get_global_id(0);
    const int first = 0, step = 1;
    if (o >= nout)
        return;
#endif
    const int base = kept_offset(o, kshape, kstride);
    CT shift = 0;
#ifdef LSE
    // LogSumExp = m + log(sum(exp(v - m))) with m the row's max
    shift = row_max(x, base, first, step, R, rshape, rstride);
  #ifdef GROUP
    {
        const int lid = get_local_id(0);
        scratch[lid] = shift;
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int width = WGS / 2; width > 0; width >>= 1) {
            if (lid < width)
                scratch[lid] = FMAX(scratch[lid], scratch[lid + width]);
            barrier(CLK_LOCAL_MEM_FENCE);
        }
        shift = scratch[0];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
  #endif
    if (isinf(shift))
        shift = 0;
#endif
    CT acc = partial(x, base, first, step, R, rshape, rstride, shift);
#ifdef GROUP
    acc = group_combine(scratch, acc);
    if (first != 0)
        return;
#endif
#ifdef LSE
    ST_OUT(y, o, shift + log(acc));
#else
    ST_OUT(y, o, POST(acc, R));
#endif
}

// ArgMax (or -DARGMIN) along one axis of length L and stride `inner`; rows
// are (outer, inner) pairs.  Ties go to the first index, or with -DLAST to
// the last one.
__kernel void argreduce(__global const T_IN *x, __global long *y, const int rows,
                        const int L, const int inner)
{
    const int r = get_global_id(0);
    if (r >= rows)
        return;
    const int base = (r / inner) * L * inner + r % inner;
    CT best = LD_IN(x, base);
    int index = 0;
    for (int i = 1; i < L; ++i) {
        const CT v = LD_IN(x, base + i * inner);
#ifdef ARGMIN
        const int better = v < best;
#else
        const int better = v > best;
#endif
#ifdef LAST
        if (better || v == best) {
#else
        if (better) {
#endif
            best = v;
            index = i;
        }
    }
    y[r] = index;
}

// CumSum (or -DPROD CumProd) along one axis (-DEXCLUSIVE, -DREVERSE as in ONNX).
#ifdef PROD
  #define SCAN_INIT 1
  #define SCAN(acc, v) ((acc) * (v))
#else
  #define SCAN_INIT 0
  #define SCAN(acc, v) ((acc) + (v))
#endif
__kernel void cumsum(__global const T_IN *x, __global T_OUT *y, const int rows,
                     const int L, const int inner)
{
    const int r = get_global_id(0);
    if (r >= rows)
        return;
    const int base = (r / inner) * L * inner + r % inner;
    CT acc = SCAN_INIT;
    for (int step = 0; step < L; ++step) {
#ifdef REVERSE
        const int i = base + (L - 1 - step) * inner;
#else
        const int i = base + step * inner;
#endif
        const CT v = LD_IN(x, i);
#ifdef EXCLUSIVE
        ST_OUT(y, i, acc);
        acc = SCAN(acc, v);
#else
        acc = SCAN(acc, v);
        ST_OUT(y, i, acc);
#endif
    }
}

// TopK along one axis: the K largest (or -DSMALLEST) values, in order, ties
// broken by the lower index.  Each step finds the best element ranked after
// the previous one, so no per-row scratch is needed: O(K * L) per row.
// NaN ranks above every number, as in numpy's sort and onnxruntime's TopK.
#define RANK_GT(v, w) ((v) > (w) || ((v) != (v) && (w) == (w)))
#define RANK_EQ(v, w) ((v) == (w) || ((v) != (v) && (w) != (w)))
#ifdef SMALLEST
  #define AHEAD(v, i, w, j) (RANK_GT(w, v) || (RANK_EQ(v, w) && (i) < (j)))
#else
  #define AHEAD(v, i, w, j) (RANK_GT(v, w) || (RANK_EQ(v, w) && (i) < (j)))
#endif
__kernel void topk(__global const T_IN *x, __global T_OUT *values, __global long *indices,
                   const int rows, const int L, const int inner, const int K)
{
    const int r = get_global_id(0);
    if (r >= rows)
        return;
    const int outer = r / inner, in = r % inner;
    const int base = outer * L * inner + in;
    const int obase = outer * K * inner + in;
    CT prev = 0;
    int prev_i = -1;
    for (int k = 0; k < K; ++k) {
        CT best = 0;
        int best_i = -1;
        for (int i = 0; i < L; ++i) {
            const CT v = LD_IN(x, base + i * inner);
            if (prev_i >= 0 && !AHEAD(prev, prev_i, v, i))
                continue;   // already taken
            if (best_i < 0 || AHEAD(v, i, best, best_i)) {
                best = v;
                best_i = i;
            }
        }
        ST_OUT(values, obase + k * inner, best);
        indices[obase + k * inner] = best_i;
        prev = best;
        prev_i = best_i;
    }
}

// NegativeLogLikelihoodLoss before its reduction: for each (n, d) of an
// input viewed as (N, C, D), loss = -x[n, t, d] * w[t] and wsum = w[t] (both
// 0 where t is IGNORE_INDEX or out of range); the host then sums them.
__kernel void nll(__global const STORE_T *x, __global const long *target,
                  __global const STORE_T *weight, __global STORE_T *loss,
                  __global STORE_T *wsum, const int total, const int C, const int D)
{
    const int i = get_global_id(0);
    if (i >= total)
        return;
    const long t = target[i];
    float l = 0.0f, w = 0.0f;
#ifdef IGNORE_INDEX
    const int ignored = t == IGNORE_INDEX;
#else
    const int ignored = 0;
#endif
    if (!ignored && t >= 0 && t < C) {
#ifdef HAS_WEIGHT
        w = LOADF(weight, (int)t);
#else
        w = 1.0f;
#endif
        l = -LOADF(x, ((i / D) * C + (int)t) * D + i % D) * w;
    }
    STOREF(loss, i, l);
    STOREF(wsum, i, w);
}
