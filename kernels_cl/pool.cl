// Pooling over 1 to 3 spatial dims (1-D and 2-D are 3-D with unit leading
// dims): max (-DPOOL_MAX, optionally with flat argmax indices), average
// (-DPOOL_AVG) and Lp (-DPOOL_LP), plus global pooling over a whole plane.
// Float tensors use the storage macros; -DRAW -DT=uchar reads a plain
// integer array (MaxPool on int8/uint8).
#include "common.h"

#if !defined(POOL_MAX) && !defined(POOL_AVG) && !defined(POOL_LP)
  #define POOL_MAX
#endif
#ifndef LP_P
  #define LP_P 2.0f         // the p of Lp pooling
#endif
// -DNO_DEPTH: 1-D/2-D pooling (D = 1), with the depth loop compiled out.
#ifdef NO_DEPTH
  #define KD_COUNT 1
  #define IN_D(id) true
#else
  #define KD_COUNT kern.s0
  #define IN_D(id) ((id) >= 0 && (id) < in.s0)
#endif
#ifdef RAW
  #ifndef T
    #define T uchar         // element type of RAW tensors
  #endif
  #define ET T
  #define LD(p, i) ((float)(p)[i])
  #define ST(p, i, v) ((p)[i] = (T)(v))
#else
  #define ET STORE_T
  #define LD(p, i) LOADF(p, i)
  #define ST(p, i, v) STOREF(p, i, v)
#endif

// Every int4 is (D, H, W, unused): in/out = spatial dims, kern = window,
// pad = padding before, pad_end = padding after, dil = dilations.
// gid0 = ow, gid1 = oh, gid2 = nc * OD + od.  col_major: indices in
// storage_order=1 (column-major) form.
__kernel void pool(__global const ET *x, __global ET *y, __global long *indices,
                   const int4 in, const int4 out, const int4 kern, const int4 stride,
                   const int4 pad, const int4 pad_end, const int4 dil,
                   const int count_include_pad, const int col_major)
{
    const int ow = get_global_id(0);
    const int oh = get_global_id(1);
    const int z = get_global_id(2);
#ifdef NO_DEPTH
    const int od = 0, nc = z, d0 = 0;
#else
    const int od = z % out.s0;
    const int nc = z / out.s0;
    const int d0 = od * stride.s0 - pad.s0;
#endif
    const int plane = in.s0 * in.s1 * in.s2;
    const int base = nc * plane;
    const int h0 = oh * stride.s1 - pad.s1;
    const int w0 = ow * stride.s2 - pad.s2;
#ifdef POOL_MAX
    float acc = -INFINITY;
    int best = -1;
#else
    float acc = 0.0f;
    int inside = 0, padded = 0;
#endif
    for (int kd = 0; kd < KD_COUNT; ++kd) {
        const int id = d0 + kd * dil.s0;
        for (int kh = 0; kh < kern.s1; ++kh) {
            const int ih = h0 + kh * dil.s1;
            for (int kw = 0; kw < kern.s2; ++kw) {
                const int iw = w0 + kw * dil.s2;
                const bool in_bounds = IN_D(id) && ih >= 0 && ih < in.s1
                                       && iw >= 0 && iw < in.s2;
                const int offset = (id * in.s1 + ih) * in.s2 + iw;
#ifdef POOL_MAX
                if (in_bounds) {
                    const float v = LD(x, base + offset);
                    // the first NaN wins and stays (NaN propagates)
                    if (v > acc || best < 0 || (v != v && acc == acc)) {
                        acc = v;
                        best = col_major ? (iw * in.s1 + ih) * in.s0 + id : offset;
                    }
                }
#else
                if (in_bounds) {
                    const float v = LD(x, base + offset);
  #ifdef POOL_LP
                    acc += pow(fabs(v), LP_P);
  #else
                    acc += v;
  #endif
                    ++inside;
                }
                if (id < in.s0 + pad_end.s0 && ih < in.s1 + pad_end.s1
                        && iw < in.s2 + pad_end.s2)
                    ++padded;
#endif
            }
        }
    }
#ifdef POOL_AVG
    acc /= (float)(count_include_pad ? padded : max(inside, 1));
#endif
#ifdef POOL_LP
    acc = pow(acc, 1.0f / LP_P);
#endif
    const int o = ((nc * out.s0 + od) * out.s1 + oh) * out.s2 + ow;
    ST(y, o, acc);
#ifdef WITH_INDICES
    indices[o] = (long)nc * plane + max(best, 0);
#endif
}

// 2-D max or average pooling with the window, strides and dilations known at
// build time (-DKH -DKW -DSH -DSW -DDH -DDW), no indices.  pads: (top, left,
// bottom, right); dims: (H, W, OH, OW).
#ifdef KH
// One output: every tap is a clamped load plus a select (no branches).
inline float pool_at(__global const STORE_T *plane, const int H, const int W, const int h0,
                     const int w0, const int4 pads, const int count_include_pad)
{
  #ifdef POOL_MAX
    float acc = -INFINITY;
  #else
    float acc = 0.0f;
    int inside = 0, padded = 0;
  #endif
    #pragma unroll
    for (int kh = 0; kh < KH; ++kh) {
        const int ih = h0 + kh * DH;
        const bool row_in = ih >= 0 && ih < H;
        const int row = clamp(ih, 0, H - 1) * W;
        #pragma unroll
        for (int kw = 0; kw < KW; ++kw) {
            const int iw = w0 + kw * DW;
            const bool in = row_in && iw >= 0 && iw < W;
            const float v = LOADF(plane, row + clamp(iw, 0, W - 1));
  #ifdef POOL_MAX
            acc = in ? FMAX(acc, v) : acc;
  #else
            acc += in ? v : 0.0f;
            inside += in;
            padded += ih < H + pads.s2 && iw < W + pads.s3;
  #endif
        }
    }
  #ifdef POOL_AVG
    acc /= (float)(count_include_pad ? padded : max(inside, 1));
  #endif
    return acc;
}

// One work-item per output: gid0 = ow, gid1 = oh, gid2 = n * C + c.  The
// work-items vectorise on a GPU; a CPU driver vectorising across ow turns
// the clamped strided loads into gathers (pool2d_rows is for CPUs).
__kernel void pool2d(__global const STORE_T *x, __global STORE_T *y, const int4 dims,
                     const int4 pads, const int count_include_pad)
{
    const int ow = get_global_id(0);
    const int oh = get_global_id(1);
    const int nc = get_global_id(2);
    const int H = dims.s0, W = dims.s1, OH = dims.s2, OW = dims.s3;
    if (ow >= OW || oh >= OH)
        return;
    STOREF(y, ((size_t)nc * OH + oh) * OW + ow,
           pool_at(x + (size_t)nc * H * W, H, W, oh * SH - pads.s0, ow * SW - pads.s1, pads,
                   count_include_pad));
}

// One work-item per output row: gid0 = oh, gid1 = n * C + c.  Outputs whose
// window lies inside the row, [lo, hi), go eight at a time in float8 (rows
// clamped once per work-item; strides 1 and 2 load contiguous vectors, the
// compiler does not vectorise such a loop by itself), the last block of
// eight shifted left to end at hi (outputs computed twice are written twice
// with the same value) instead of leaving a scalar tail; the border outputs
// go through pool_at.  Max pooling replaces a padding row of the window by
// one of its rows inside the image (the maximum is the same), so that its
// vector loop is a plain maximum per tap, no select.  ResNet-18's 3x3/2 max
// pool: 0.21-0.29 ms against 0.47-0.60 for pool2d on PoCL.
#ifdef POOL_MAX
  #define VERT_INIT (-INFINITY)
#else
  #define VERT_INIT 0.0f
#endif
#ifdef STORE_HALF                  // PoCL 3.1 crashed compiling vload_half8 here
  #define ROW_LOAD8(p, i) ((float8)(LOADFN(4, p, i), LOADFN(4, p, (i) + 4)))
#else
  #define ROW_LOAD8(p, i) LOADFN(8, p, i)
#endif
__kernel void pool2d_rows(__global const STORE_T *x, __global STORE_T *y, const int4 dims,
                          const int4 pads, const int count_include_pad)
{
    const int oh = get_global_id(0);
    const int nc = get_global_id(1);
    const int H = dims.s0, W = dims.s1, OH = dims.s2, OW = dims.s3;
    if (oh >= OH)
        return;
    __global const STORE_T *plane = x + (size_t)nc * H * W;
    __global STORE_T *out = y + ((size_t)nc * OH + oh) * OW;
    const int h0 = oh * SH - pads.s0;
    // [lo, hi): ow * SW - pad >= 0 and ow * SW - pad + (KW - 1) * DW < W
    const int last = W - 1 - (KW - 1) * DW + pads.s1;      // may be negative
    const int lo = min(OW, (pads.s1 + SW - 1) / SW);
    const int hi = max(lo, min(OW, last >= 0 ? last / SW + 1 : 0));
    for (int ow = 0; ow < lo; ++ow)
        STOREF(out, ow, pool_at(plane, H, W, h0, ow * SW - pads.s1, pads, count_include_pad));
    __global const STORE_T *rows[KH];
    bool row_in[KH];
    int rows_in = 0, rows_padded = 0, inside = -1;
    #pragma unroll
    for (int kh = 0; kh < KH; ++kh) {
        const int ih = h0 + kh * DH;
        row_in[kh] = ih >= 0 && ih < H;
        rows[kh] = plane + clamp(ih, 0, H - 1) * W;
        rows_in += row_in[kh];
        rows_padded += ih < H + pads.s2;
        inside = (inside < 0 && row_in[kh]) ? kh : inside;
    }
  #ifdef POOL_AVG
    const float scale = 1.0f / (float)max(1, (count_include_pad ? rows_padded : rows_in) * KW);
  #else
    if (inside >= 0) {
        #pragma unroll
        for (int kh = 0; kh < KH; ++kh)
            rows[kh] = row_in[kh] ? rows[kh] : rows[inside];
    }
  #endif
    int ow = lo;
  #if SW <= 2
    // blocks of eight outputs: a tap's inputs are 8 consecutive elements
    // (SW = 1) or the even ones of 15 (SW = 2: two float8 loads, the second
    // starting one element early so that none is read past the window)
    const int last_block = hi - 8;
    if (last_block >= lo && inside >= 0) {
        for (int b = lo; ; b = min(b + 8, last_block)) {
    #ifdef POOL_MAX
            float8 acc = (float8)(-INFINITY);
    #else
            float8 acc = (float8)(0.0f);
    #endif
    #if SW == 2 && KW == 3 && DW == 1
            // the window's rows first, over the 17 inputs of the block (two
            // float8 and one more), then its columns: the even inputs, the
            // odd ones and the even ones one further on (float8 halves, not
            // float16: 16-wide code crashes some compilers without AVX-512)
            const int at = b * 2 - pads.s1;
            float8 lo = (float8)(VERT_INIT), hi = lo;
            float s = VERT_INIT;
            #pragma unroll
            for (int kh = 0; kh < KH; ++kh) {
                const float8 p = ROW_LOAD8(rows[kh], at), q = ROW_LOAD8(rows[kh], at + 8);
                const float e = LOADF(rows[kh], at + 16);
      #ifdef POOL_MAX
                lo = FMAX(p, lo);       // a NaN input propagates
                hi = FMAX(q, hi);
                s = FMAX(e, s);
      #else
                lo += row_in[kh] ? p : (float8)(0.0f);
                hi += row_in[kh] ? q : (float8)(0.0f);
                s += row_in[kh] ? e : 0.0f;
      #endif
            }
            const float8 k0 = (float8)(lo.even, hi.even), k1 = (float8)(lo.odd, hi.odd);
            const float8 k2 = (float8)(k0.s1234, k0.s567, s);
      #ifdef POOL_MAX
            acc = FMAX(k0, acc);
            acc = FMAX(k1, acc);
            acc = FMAX(k2, acc);
      #else
            acc = k0 + k1 + k2;
      #endif
    #else
            #pragma unroll
            for (int kh = 0; kh < KH; ++kh) {
                #pragma unroll
                for (int kw = 0; kw < KW; ++kw) {
                    const int at = b * SW - pads.s1 + kw * DW;
    #if SW == 1
                    const float8 v = ROW_LOAD8(rows[kh], at);
    #else
                    const float8 e = ROW_LOAD8(rows[kh], at), f = ROW_LOAD8(rows[kh], at + 7);
                    const float8 v = (float8)(e.s0246, f.s1357);
    #endif
    #ifdef POOL_MAX
                    acc = FMAX(v, acc);         // a NaN input propagates
    #else
                    acc += row_in[kh] ? v : (float8)(0.0f);
    #endif
                }
            }
    #endif
    #ifdef POOL_AVG
            acc *= scale;
    #endif
            STOREFN(8, out, b, acc);
            if (b == last_block)
                break;
        }
        ow = hi;
    }
  #endif
    for (; ow < hi; ++ow) {
  #ifdef POOL_MAX
        float acc = -INFINITY;
  #else
        float acc = 0.0f;
  #endif
        #pragma unroll
        for (int kh = 0; kh < KH; ++kh) {
            #pragma unroll
            for (int kw = 0; kw < KW; ++kw) {
                const float v = LOADF(rows[kh], ow * SW - pads.s1 + kw * DW);
  #ifdef POOL_MAX
                acc = row_in[kh] ? FMAX(acc, v) : acc;
  #else
                acc += row_in[kh] ? v : 0.0f;
  #endif
            }
        }
  #ifdef POOL_AVG
        acc *= scale;
  #endif
        STOREF(out, ow, acc);
    }
    for (int ow = hi; ow < OW; ++ow)
        STOREF(out, ow, pool_at(plane, H, W, h0, ow * SW - pads.s1, pads, count_include_pad));
}
#endif

// Reduce each row of length L (one work-item per row).
__kernel void global_pool(__global const ET *x, __global ET *y, const int rows, const int L)
{
    const int r = get_global_id(0);
    if (r >= rows)
        return;
    const int base = r * L;
#ifdef POOL_MAX
    float acc = -INFINITY;
    for (int i = 0; i < L; ++i) {
        const float v = LD(x, base + i);
        acc = FMAX(acc, v);
    }
#elif defined(POOL_LP)
    float acc = 0.0f;
    for (int i = 0; i < L; ++i)
        acc += pow(fabs(LD(x, base + i)), LP_P);
    acc = pow(acc, 1.0f / LP_P);
#else
    float acc = 0.0f;
    for (int i = 0; i < L; ++i)
        acc += LD(x, base + i);
    acc /= (float)L;
#endif
    ST(y, r, acc);
}
