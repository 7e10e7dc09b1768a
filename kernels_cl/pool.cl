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
                    if (v > acc || best < 0) {
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
// build time (-DKH -DKW -DSH -DSW -DDH -DDW), no indices: the window loops
// unroll and every tap is a clamped load plus a select, so the work-items
// vectorise.  gid0 = ow, gid1 = oh, gid2 = n * C + c.  pads: (top, left,
// bottom, right).
#ifdef KH
__kernel void pool2d(__global const STORE_T *x, __global STORE_T *y, const int4 dims,
                     const int4 pads, const int count_include_pad)
{
    const int ow = get_global_id(0);
    const int oh = get_global_id(1);
    const int nc = get_global_id(2);
    const int H = dims.s0, W = dims.s1, OH = dims.s2, OW = dims.s3;
    if (ow >= OW || oh >= OH)
        return;
    __global const STORE_T *plane = x + (size_t)nc * H * W;
    const int h0 = oh * SH - pads.s0, w0 = ow * SW - pads.s1;
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
            acc = in ? fmax(acc, v) : acc;
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
    STOREF(y, ((size_t)nc * OH + oh) * OW + ow, acc);
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
    for (int i = 0; i < L; ++i)
        acc = fmax(acc, LD(x, base + i));
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
