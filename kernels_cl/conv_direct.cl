// Direct (implicit-GEMM) 2-D convolution for strided and large-kernel convs
// (ResNet's 7x7/2 stem, the 3x3/2 and 1x1/2 down-sampling convs): the same
// register-blocked product as gemm.cl, C[co][pixel] = sum_k W[co][k] X[k][pixel]
// with k = (ci, ky, kx), but the X operand is read straight from the input
// instead of from an im2col copy (which for the 7x7 stem is 7.4 MB written
// and read again per image).
//
// For conv_direct, conv_phases first copies the input into a zero-padded,
// phase-split layout
//   xp[n][ci][px][row][q] = x_padded[n][ci][row][q * SX + px]
// so that the TN outputs ox0..ox0+TN-1 of tap (ky, kx) are TN consecutive
// elements xp[n][ci][kx % SX][oy * SY + ky][ox0 + kx / SX + ...]: one vector
// load for any stride, no bounds checks in the inner loop.
//
// conv_direct: one work-item computes TM output channels x RY output rows x
// TN pixels of one row, in vectors along the pixels; the weights are
// gemm.cl's packed A panels Wp[group][Mg / TM][K][TM].  Suits few input
// channels (the RGB stem: K = 147) and grouped convs with few channels per
// group (ResNeXt, RegNet), whose im2col copy costs 2-4x their GEMM.
//
// conv_oc: one work-item computes OP pixels of one row x OV x OVW output
// channels, in vectors along the channels: per tap, OV vector loads of
// weights (packed Wo[M / (OV OVW)][K][OV OVW]) and OP broadcast input
// elements, which it reads from the input in place (broadcasts need no
// contiguous run; the padding is handled at compile time, see below).
// Suits many input channels: 1.3-2.3x conv_direct's GFLOP/s on ResNet-18's
// 3x3 convs with 64-512 channels, and 1.4-2x im2col + GEMM on the strided
// ones (docs/BENCHMARKS.md).
//
// Both apply bias, residual and activation with epilogue.h's run-time
// epilogue.
//
// A build holds one of the three kernels, so that a model compiles no kernel
// it does not launch: -DPHASES_ONLY conv_phases (which depends on SX alone:
// one program serves every conv of a stride), -DOC conv_oc, else conv_direct.
#include "common.h"

#ifndef KH
  #define KH 3              // kernel height
#endif
#ifndef KW
  #define KW 3              // kernel width
#endif
#ifndef SY
  #define SY 1              // vertical stride
#endif
#ifndef SX
  #define SX 1              // horizontal stride
#endif
#ifndef DY
  #define DY 1              // vertical dilation
#endif
#ifndef DX
  #define DX 1              // horizontal dilation
#endif
#ifndef TM
  #define TM 8              // output channels per work-item
#endif
#ifndef TN
  #define TN 16             // pixels per output row and work-item: 8 or 16
#endif
#ifndef RY
  #define RY 3              // output rows per work-item
#endif

#ifndef PHASE_ROWS
  #define PHASE_ROWS 8      // conv_phases: rows of xp per work-item (a row alone is
#endif                      // too little work: 0.13 vs 0.10 ms on a 64 x 56 x 56 input)
#ifndef OP
  #define OP 7              // conv_oc: pixels per work-item
#endif
#ifndef OV
  #define OV 2              // conv_oc: vectors of output channels per work-item
#endif
#ifndef OVW
  #define OVW 16            // conv_oc: float vector width (4, 8 or 16)
#endif
#ifndef OPB
  #define OPB 8             // conv_oc: most pixel blocks per work-item (xgeo.s3 says how many)
#endif
#ifndef OCC
  #define OCC 16            // conv_oc: input channels per pass over the blocks
#endif

#define VT CAT(float, TN)
#ifdef OC
  #define EPI_VW OVW        // conv_oc's vectors run along the channels
#else
  #define EPI_VW TN
#endif
#include "epilogue.h"

// One work-item per PHASE_ROWS rows of one input plane, writing those rows
// of all SX phases, eight columns q at a time: a chunk whose inputs all lie
// inside the image row is one vector load (stride 1) or two split into the
// even and odd elements, one phase each (stride 2); chunks at the row's
// ends and strides 3-4 go element by element, rows of padding are zeros.
// geo: (H, W, rows of xp, columns q of xp); pad: (top, left).  Grid:
// (ceil(rows / PHASE_ROWS), N * C).
#ifdef PHASES_ONLY
__kernel void conv_phases(__global const STORE_T *x, __global STORE_T *xp,
                          const int4 geo, const int4 pad)
{
    const int nc = get_global_id(1);            // n * C + ci
    const int H = geo.s0, W = geo.s1, rows = geo.s2, cols = geo.s3;
    const size_t plane = (size_t)rows * cols;
    const int row_end = min(rows, ((int)get_global_id(0) + 1) * PHASE_ROWS);
    for (int row = get_global_id(0) * PHASE_ROWS; row < row_end; ++row) {
        const int iy = row - pad.s0;
        const bool row_in = iy >= 0 && iy < H;
        __global const STORE_T *src = x + ((size_t)nc * H + clamp(iy, 0, H - 1)) * W;
        __global STORE_T *dst = xp + (size_t)nc * SX * plane + (size_t)row * cols;
        for (int q0 = 0; q0 < cols; q0 += 8) {
            const int ix0 = q0 * SX - pad.s1;   // input column of phase 0, lane 0
            float8 v[SX];
            if (row_in && SX <= 2 && ix0 >= 0 && ix0 + 8 * SX <= W) {
#if SX == 1
                v[0] = LOADFN(8, src, ix0);
#elif SX == 2
                const float8 lo = LOADFN(8, src, ix0), hi = LOADFN(8, src, ix0 + 8);
                v[0] = (float8)(lo.even, hi.even);
                v[1] = (float8)(lo.odd, hi.odd);
#endif
            } else {
                #pragma unroll
                for (int px = 0; px < SX; ++px) {
                    float t[8];
                    #pragma unroll
                    for (int j = 0; j < 8; ++j) {
                        const int ix = ix0 + j * SX + px;
                        t[j] = row_in && ix >= 0 && ix < W ? LOADF(src, ix) : 0.0f;
                    }
                    v[px] = vload8(0, t);
                }
            }
            #pragma unroll
            for (int px = 0; px < SX; ++px) {
                if (q0 + 8 <= cols) {
                    STOREFN(8, dst + px * plane, q0, v[px]);
                } else {
                    float t[8];
                    vstore8(v[px], 0, t);
                    for (int j = 0; q0 + j < cols; ++j)
                        STOREF(dst + px * plane, q0 + j, t[j]);
                }
            }
        }
    }
}

#elif !defined(OC)

// dims: (C, M, OH, OW); xgeo: (rows of xp, columns of xp, row groups per
// image = ceil(OH / RY), column blocks = ceil(OW / TN)); grp: (input and
// output channels per group, channel tiles per group = ceil(Mg / TM), 0).
// Grid: (row groups x column blocks, groups x channel tiles per group, N).
__kernel void conv_direct(__global const STORE_T *xp, __global const float *wp,
                          __global STORE_T *y, __global const STORE_T *bias,
                          __global const STORE_T *res, const int4 dims, const int4 xgeo,
                          const int4 grp, const int epi, const float4 epf)
{
    const int C = dims.s0, M = dims.s1, OH = dims.s2, OW = dims.s3;
    const int rows = xgeo.s0, cols = xgeo.s1, blocks = xgeo.s3;
    const int Cg = grp.s0, Mg = grp.s1;
    const int oy0 = (get_global_id(0) / blocks) * RY;
    const int ox0 = (get_global_id(0) % blocks) * TN;
    const int mb = get_global_id(1);
    const int n = get_global_id(2);
    const int g = mb / grp.s2;
    const int m0 = g * Mg + (mb % grp.s2) * TM;
    const int m_end = min(M, (g + 1) * Mg);
    if (oy0 >= OH || m0 >= m_end)
        return;
    const int K = Cg * KH * KW;
    __global const float *ap = wp + (size_t)mb * K * TM;
    const size_t plane = (size_t)rows * cols;
    __global const STORE_T *xn = xp + ((size_t)n * C + g * Cg) * SX * plane;

    VT acc[TM][RY];
    #pragma unroll
    for (int i = 0; i < TM; ++i)
        #pragma unroll
        for (int r = 0; r < RY; ++r)
            acc[i][r] = (VT)(0.0f);

    for (int c = 0; c < Cg; ++c) {
        __global const STORE_T *xc = xn + (size_t)c * SX * plane;
        for (int ky = 0; ky < KH; ++ky) {
            __global const STORE_T *xr = xc + (oy0 * SY + ky * DY) * cols + ox0;
            #pragma unroll
            for (int kx = 0; kx < KW; ++kx) {
                __global const STORE_T *src = xr + (kx * DX % SX) * plane + kx * DX / SX;
                VT b[RY];
                #pragma unroll
                for (int r = 0; r < RY; ++r)     // rows past OH read padding rows
                    b[r] = LOADFN(TN, src, min(r, OH - 1 - oy0) * SY * cols);
                #pragma unroll
                for (int i = 0; i < TM; ++i) {
                    const float a = ap[i];
                    #pragma unroll
                    for (int r = 0; r < RY; ++r)
                        acc[i][r] = a * b[r] + acc[i][r];
                }
                ap += TM;
            }
        }
    }

    #pragma unroll
    for (int i = 0; i < TM; ++i) {
        const int co = m0 + i;
        if (co >= m_end)
            break;
        const float bv = (epi & EPI_BIAS_ROW) ? LOADF(bias, co) : 0.0f;
        #pragma unroll
        for (int r = 0; r < RY; ++r) {
            const int oy = oy0 + r;
            if (oy >= OH)
                break;
            epi_store(y, res, (((size_t)n * M + co) * OH + oy) * OW + ox0, OW - ox0,
                      acc[i][r] + bv, epi, epf);
        }
    }
}

#else

#define OVT CAT(float, OVW)

// The input is read in place, no padded copy (the copy, and then reading it
// back from the other core's cache, cost 15-25% of these convs; ResNet-18
// 4-6% faster in all): rows
// outside the image are skipped per tap row, and columns outside it are
// known at compile time, from the input width W_IN, the left padding PAD_L,
// OW_C output columns and BLOCKS pixel blocks per row, for the first and
// the last block of a row (the blocks between have none), so that their
// taps are simply left out.
#ifndef W_IN
  #define W_IN 7            // conv_oc: input width
#endif
#ifndef PAD_L
  #define PAD_L 1           // conv_oc: left padding
#endif
#ifndef OW_C
  #define OW_C 7            // conv_oc: output width
#endif
#ifndef BLOCKS
  #define BLOCKS 1          // conv_oc: pixel blocks per output row = ceil(OW_C / OP)
#endif
#define COL(p, kx) ((p) * SX + (kx) * DX)                   // in the block's window
#define LAST_IX0 ((BLOCKS - 1) * OP * SX - PAD_L)
#define IN_ROW(ix) ((ix) >= 0 && (ix) < W_IN)
#define FIRST_OK(p, kx) (IN_ROW(COL(p, kx) - PAD_L) && (p) < OW_C)
#define LAST_OK(p, kx) (IN_ROW(LAST_IX0 + COL(p, kx)) && (BLOCKS - 1) * OP + (p) < OW_C)
#define ONLY_OK(p, kx) (FIRST_OK(p, kx) && LAST_OK(p, kx))
#ifdef INNER_CHECKED        // padding wide enough to reach blocks between the edges
  #define INNER_OK(p, kx) IN_ROW(ix0 + COL(p, kx))
#else
  #define INNER_OK(p, kx) 1
#endif

// acc += the taps of input channels [c0, c1) for the block whose window
// starts at input column ix0, taking the taps for which OK(p, kx) holds
#define BLOCK_TAPS(OK) \
    for (int c = c0; c < c1; ++c) { \
        __global const STORE_T *xc = xn + (size_t)c * H * W_IN + ix0; \
        __global const float *wc = wob + (size_t)c * taps * (OV * OVW); \
        for (int ky = 0; ky < KH; ++ky) { \
            const int iy = iy0 + ky * DY; \
            if (iy < 0 || iy >= H) \
                continue; \
            __global const STORE_T *row = xc + iy * W_IN; \
            __global const float *wq = wc + ky * KW * (OV * OVW); \
            _Pragma("unroll") \
            for (int kx = 0; kx < KW; ++kx) { \
                OVT w[OV]; \
                _Pragma("unroll") \
                for (int j = 0; j < OV; ++j) \
                    w[j] = CAT(vload, OVW)(kx * OV + j, wq); \
                _Pragma("unroll") \
                for (int p = 0; p < OP; ++p) { \
                    if (OK(p, kx)) { \
                        const float xv = LOADF(row, COL(p, kx)); \
                        _Pragma("unroll") \
                        for (int j = 0; j < OV; ++j) \
                            acc[p][j] = xv * w[j] + acc[p][j]; \
                    } \
                } \
            } \
        } \
    }

// dims: (C, M, OH, OW); xgeo: (H, pad top, pixel blocks per work-item <=
// OPB).  Grid: (ceil(OH x BLOCKS / xgeo.s2), ceil(M / (OV OVW)), N).
//
// A work-item runs OPB pixel blocks through the input channels OCC at a
// time, keeping the sums of the blocks it is not working on in private
// memory: the OCC x KH x KW x OV x OVW weights of a slice then serve all OPB
// blocks from the L1 cache instead of streaming from L2 for every block
// (3-10% on ResNet-18's strided and 7x7 convs, 10% fewer cycles in the
// layer4 convs, whose 590 KB weight panels a block would stream alone).
__kernel void conv_oc(__global const STORE_T *x, __global const float *wo,
                      __global STORE_T *y, __global const STORE_T *bias,
                      __global const STORE_T *res, const int4 dims, const int4 xgeo,
                      const int epi, const float4 epf)
{
    const int C = dims.s0, M = dims.s1, OH = dims.s2, OW = dims.s3;
    const int H = xgeo.s0, pad_top = xgeo.s1, per_item = xgeo.s2;
    const int blocks = BLOCKS;
    const int g0 = get_global_id(0) * per_item;
    const int nblk = min(per_item, OH * blocks - g0);
    const int ob = get_global_id(1);
    const int n = get_global_id(2);
    if (nblk <= 0)
        return;
    const int taps = KH * KW;
    __global const float *wob = wo + (size_t)ob * C * taps * (OV * OVW);
    __global const STORE_T *xn = x + (size_t)n * C * H * W_IN;

    OVT sums[OPB][OP][OV];
    for (int b = 0; b < OPB; ++b)
        #pragma unroll
        for (int p = 0; p < OP; ++p)
            #pragma unroll
            for (int j = 0; j < OV; ++j)
                sums[b][p][j] = (OVT)(0.0f);

    for (int c0 = 0; c0 < C; c0 += OCC) {
        const int c1 = min(C, c0 + OCC);
        for (int b = 0; b < nblk; ++b) {
            const int oy = (g0 + b) / blocks, bx = (g0 + b) % blocks;
            const int iy0 = oy * SY - pad_top, ix0 = bx * OP * SX - PAD_L;
            OVT acc[OP][OV];
            #pragma unroll
            for (int p = 0; p < OP; ++p)
                #pragma unroll
                for (int j = 0; j < OV; ++j)
                    acc[p][j] = sums[b][p][j];
#if BLOCKS == 1
            BLOCK_TAPS(ONLY_OK)
#else
            if (bx == 0) {
                BLOCK_TAPS(FIRST_OK)
            } else if (bx == BLOCKS - 1) {
                BLOCK_TAPS(LAST_OK)
            } else {
                BLOCK_TAPS(INNER_OK)
            }
#endif
            #pragma unroll
            for (int p = 0; p < OP; ++p)
                #pragma unroll
                for (int j = 0; j < OV; ++j)
                    sums[b][p][j] = acc[p][j];
        }
    }

    // Channels are the vector lanes, so each output goes out alone: OVW
    // outputs of one pixel lie OH x OW apart.
    const int act = epi >> 8;
    const size_t hw = (size_t)OH * OW;
    for (int j = 0; j < OV; ++j) {
        const int oc0 = (ob * OV + j) * OVW;
        const int lanes = min(OVW, M - oc0);
        if (lanes <= 0)
            break;
        float t[OVW];
        for (int l = 0; l < OVW; ++l)
            t[l] = (epi & EPI_BIAS_ROW) && l < lanes ? LOADF(bias, oc0 + l) : 0.0f;
        const OVT bv = CAT(vload, OVW)(0, t);
        for (int b = 0; b < nblk; ++b) {
            const int oy = (g0 + b) / blocks, ox0 = ((g0 + b) % blocks) * OP;
            const size_t base = ((size_t)n * M + oc0) * hw + oy * OW + ox0;
            for (int p = 0; p < OP; ++p) {
                if (ox0 + p >= OW)
                    break;
                CAT(vstore, OVW)(sums[b][p][j] + bv, 0, t);
                if (epi & EPI_RESIDUAL)
                    for (int l = 0; l < lanes; ++l)
                        t[l] += LOADF(res, base + l * hw + p);
                CAT(vstore, OVW)(act_vec(CAT(vload, OVW)(0, t), act, epf.s1, epf.s2), 0, t);
                for (int l = 0; l < lanes; ++l)
                    STOREF(y, base + l * hw + p, t[l]);
            }
        }
    }
}
#endif
