// Direct depthwise 2-D convolution (groups == input channels, any channel
// multiplier), with fused bias and activation.  Each work-item computes
// `rows` output rows of one channel (a run-time argument: one row each left
// the per-item setup, its divisions and filter loads, as costly as the
// arithmetic on 14x14 maps), WX pixels at a time, in vectors with the kernel
// window fully unrolled (KH, KW, SX, DX are compile time constants).  A
// chunk whose window runs past the row (padding; on 14x14 and 7x7 maps that
// is every chunk) loads the same vectors, which then reach into the
// neighbouring rows, and zeroes the lanes outside the row; only where such a
// load would leave the tensor (its first and last rows) and for strides
// above 2 does a chunk take the checked scalar path.
#include "common.h"
// A build holds one of the two kernels: -DPLANE depthwise_plane, else depthwise.

#ifndef KH
  #define KH 3              // kernel height
#endif
#ifndef KW
  #define KW 3              // kernel width
#endif
#ifndef SX
  #define SX 1              // stride along x: 1 or 2 use vector loads
#endif
#ifndef DX
  #define DX 1              // dilation along x
#endif
#ifndef WX
  #define WX 8              // output pixels per chunk (a float vector width)
#endif
#ifndef ACT
  #define ACT ACT_NONE      // fused activation (see common.h)
#endif

#define VT CAT(float, WX)
#define VI CAT(int, WX)
#define WIN ((WX - 1) * SX + (KW - 1) * DX + 1)   // inputs a chunk's window spans
// elements a chunk's vector loads touch, from its first input on
#define LOAD_SPAN ((KW - 1) * DX + (SX == 2 ? 2 * WX : WX))
#if WX == 16
  #define LANE_IDS ((VI)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15))
#elif WX == 8
  #define LANE_IDS ((VI)(0, 1, 2, 3, 4, 5, 6, 7))
#else
  #define LANE_IDS ((VI)(0, 1, 2, 3))
#endif

// The KH x KW filter of output channel m into wv; returns its bias (0 without).
inline float load_filter(__global const STORE_T *w, __global const STORE_T *bias,
                         const int m, float *wv)
{
    #pragma unroll
    for (int i = 0; i < KH * KW; ++i)
        wv[i] = LOADF(w, m * KH * KW + i);
#ifdef HAS_BIAS
    return LOADF(bias, m);
#else
    return 0.0f;
#endif
}

#ifndef PLANE
#if SX == 2
// WX inputs two apart starting at element i, from two WX-wide loads (a
// 2*WX-wide float16 load miscompiles on a CPU compiler without AVX-512)
inline VT load_even(__global const STORE_T *p, const int i)
{
    const VT lo = LOADFN(WX, p, i);
    const VT hi = LOADFN(WX, p, i + WX);
    return (VT)(lo.even, hi.even);
}
#endif

__kernel void depthwise(__global const STORE_T *x, __global const STORE_T *w,
                        __global const STORE_T *bias, __global STORE_T *y,
                        const int C, const int H, const int W, const int M,
                        const int OH, const int OW,
                        const int4 kern, const int4 pad_dil, const int total,
                        const int rows_per_item)
{
    const int oy0 = get_global_id(0) * rows_per_item;
    const int nm = get_global_id(1);          // image * M + output channel
    if (oy0 >= OH)
        return;
    const int n = nm / M, m = nm % M;
    const int c = m / (M / C);
    const int sy = kern.s2, py = pad_dil.s0, px = pad_dil.s1, dy = pad_dil.s2;
    float wv[KH * KW];
    const float b = load_filter(w, bias, m, wv);
    // where this channel's plane starts among x's `total` elements
    const int plane_at = (n * C + c) * H * W;
    __global const STORE_T *plane = x + plane_at;
    const int oy_end = min(OH, oy0 + rows_per_item);
    for (int oy = oy0; oy < oy_end; ++oy) {
    bool row_ok[KH];
    __global const STORE_T *rows[KH];
    #pragma unroll
    for (int ky = 0; ky < KH; ++ky) {
        const int iy = oy * sy - py + ky * dy;
        row_ok[ky] = iy >= 0 && iy < H;
        rows[ky] = plane + clamp(iy, 0, H - 1) * W;
    }
    __global STORE_T *out = y + (nm * OH + oy) * OW;
    // chunks of WX outputs; the last one shifted left to end at OW (outputs
    // computed twice are stored twice, the same value) instead of a scalar
    // tail, where the row has WX outputs
    const int last_chunk = OW >= WX ? OW - WX : 0;
    for (int ox0 = 0; ox0 < OW; ox0 = ox0 < last_chunk ? min(ox0 + WX, last_chunk) : OW) {
        const int ix0 = ox0 * SX - px;
        const bool in_row = ix0 >= 0 && ix0 + LOAD_SPAN <= W;
        const bool in_tensor = plane_at + ix0 >= 0
                               && plane_at + (H - 1) * W + ix0 + LOAD_SPAN <= total;
        if (SX <= 2 && in_tensor) {
            VT acc = (VT)(b);
            #pragma unroll
            for (int ky = 0; ky < KH; ++ky) {
                if (!row_ok[ky])
                    continue;
                #pragma unroll
                for (int kx = 0; kx < KW; ++kx) {
#if SX == 1
                    VT xv = LOADFN(WX, rows[ky], ix0 + kx * DX);
#elif SX == 2
                    VT xv = load_even(rows[ky], ix0 + kx * DX);
#else
                    VT xv = (VT)(0.0f);   // not reached: strides > 2 go the scalar way
#endif
                    if (!in_row) {
                        const VI ix = ix0 + kx * DX + LANE_IDS * SX;
                        xv = ix >= 0 && ix < W ? xv : (VT)(0.0f);
                    }
                    acc = wv[ky * KW + kx] * xv + acc;
                }
            }
            acc = ACT(acc);
            if (ox0 + WX <= OW) {
                STOREFN(WX, out, ox0, acc);
            } else {
                float t[WX];
                CAT(vstore, WX)(acc, 0, t);
                for (int j = 0; ox0 + j < OW; ++j)
                    STOREF(out, ox0 + j, t[j]);
            }
            continue;
        }
        // border chunk: one checked load per input of the window, then the
        // same unrolled arithmetic on registers
        float acc[WX];
        #pragma unroll
        for (int j = 0; j < WX; ++j)
            acc[j] = b;
        #pragma unroll
        for (int ky = 0; ky < KH; ++ky) {
            if (!row_ok[ky])
                continue;
            float xr[WIN];
            #pragma unroll
            for (int t = 0; t < WIN; ++t) {
                const int ix = ix0 + t;
                xr[t] = ix >= 0 && ix < W ? LOADF(rows[ky], ix) : 0.0f;
            }
            #pragma unroll
            for (int kx = 0; kx < KW; ++kx)
                #pragma unroll
                for (int j = 0; j < WX; ++j)
                    acc[j] = wv[ky * KW + kx] * xr[kx * DX + j * SX] + acc[j];
        }
        for (int j = 0; j < WX && ox0 + j < OW; ++j)
            STOREF(out, ox0 + j, ACT(acc[j]));
    }
    }
}
#endif

#ifdef PLANE
// Small planes (-DPLANE, built on its own): stride 1, no dilation, output
// rows as wide as the input's.  Output element o of a plane then reads input
// element o + (ky - pad_y) * W + (kx - pad_x) for tap (ky, kx), so one
// vector of 16 consecutive outputs (rows included) takes one load per tap,
// its lanes outside the image zeroed by a mask that depends on the plane's
// shape alone: masks are built once per work-item, which then runs
// `per_item` channels.  On 14x14 and 7x7 maps (MobileNet's last blocks)
// every 8-pixel row chunk of `depthwise` is a border chunk: this is 2-3x
// fewer operations.  The last vector of a plane is shifted left to end at
// the plane (outputs computed twice, stored twice, the same value).  A
// channel whose loads would leave the tensor (the first and last) takes a
// checked scalar path.  Grid: ceil(N * M / per_item); planes of 16 to
// 16 * PLANE_VECS outputs.
#ifndef PLANE_VECS
  #define PLANE_VECS 16     // most vectors of 16 outputs per plane
#endif

__kernel void depthwise_plane(__global const STORE_T *x, __global const STORE_T *w,
                              __global const STORE_T *bias, __global STORE_T *y,
                              const int C, const int H, const int W, const int M,
                              const int OH, const int OW,
                              const int4 kern, const int4 pad_dil, const int total,
                              const int per_item)
{
    const int nm0 = get_global_id(0) * per_item;
    const int py = pad_dil.s0, px = pad_dil.s1;
    const int OHW = OH * OW, HW = H * W;
    const int nvec = (OHW + 15) / 16;
    int16 mask[PLANE_VECS][KH * KW];      // all ones where the tap's input is in the image
    int start[PLANE_VECS];
    const int16 lanes = (int16)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for (int v = 0; v < nvec; ++v) {
        start[v] = min(v * 16, OHW - 16);
        // row and column of each lane by a float multiply (exact for such
        // small planes; a vector integer division is one division per lane)
        const int16 o = start[v] + lanes;
        int16 oy = convert_int16((convert_float16(o) + 0.5f) * (1.0f / (float)OW));
        oy = oy + (o - oy * OW < 0) - (o - oy * OW >= OW);   // a comparison is -1 where true
        const int16 ox = o - oy * OW;
        #pragma unroll
        for (int ky = 0; ky < KH; ++ky)
            #pragma unroll
            for (int kx = 0; kx < KW; ++kx) {
                const int16 iy = oy - py + ky, ix = ox - px + kx;
                mask[v][ky * KW + kx] = iy >= 0 && iy < H && ix >= 0 && ix < W;
            }
    }
    const int lo_shift = -py * W - px;                            // tap (0, 0)
    const int hi_shift = (KH - 1 - py) * W + (KW - 1 - px);       // last tap
    const int nm_end = min(nm0 + per_item, total / HW / C * M);    // N * M planes
    for (int nm = nm0; nm < nm_end; ++nm) {
        const int n = nm / M, m = nm % M;
        const int c = m / (M / C);
        const int plane_at = (n * C + c) * HW;
        __global const STORE_T *plane = x + plane_at;
        __global STORE_T *out = y + (size_t)nm * OHW;
        float wv[KH * KW];
        const float b = load_filter(w, bias, m, wv);
        if (plane_at + lo_shift >= 0 && plane_at + OHW + hi_shift <= total) {
            for (int v = 0; v < nvec; ++v) {
                float16 acc = (float16)(b);
                #pragma unroll
                for (int ky = 0; ky < KH; ++ky)
                    #pragma unroll
                    for (int kx = 0; kx < KW; ++kx) {
                        const float16 xv = LOADFN(16, plane, start[v] + (ky - py) * W + kx - px);
                        acc = wv[ky * KW + kx] * as_float16(as_int16(xv) & mask[v][ky * KW + kx])
                              + acc;
                    }
                STOREFN(16, out, start[v], (float16)(ACT(acc.lo), ACT(acc.hi)));
            }
            continue;
        }
        for (int o = 0; o < OHW; ++o) {       // the tensor's first or last channel
            const int oy = o / OW, ox = o % OW;
            float acc = b;
            for (int ky = 0; ky < KH; ++ky)
                for (int kx = 0; kx < KW; ++kx) {
                    const int iy = oy - py + ky, ix = ox - px + kx;
                    if (iy >= 0 && iy < H && ix >= 0 && ix < W)
                        acc += wv[ky * KW + kx] * LOADF(plane, iy * W + ix);
                }
            STOREF(out, o, ACT(acc));
        }
    }
}
#endif
