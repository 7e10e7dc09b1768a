// Winograd F(4x4, 3x3) for 3x3 stride-1 convolutions (Lavin and Gray, 2016):
// each 4x4 output tile is Y = A^T [(G g G^T) .* (B^T d B)] A, where d is the
// 6x6 input patch and g the 3x3 filter.  Summed over input channels, the 36
// element-wise products become 36 independent GEMMs (gemm.cl, batch z =
// position in the 6x6 tile), with 4x fewer multiply-adds than direct conv:
//   M[z][t][co] = sum_ci V[z][t][ci] * U[z][ci][co]
// U = G g G^T is computed once at load (clnet/ops/winograd.py); this file has
// the two data transforms: winograd_input writes V = B^T d B for every tile t
// and input channel, winograd_output applies A^T . A and the epilogue (bias,
// residual, activation) and writes the NCHW output.
#include "common.h"

#ifndef ACT
  #define ACT ACT_NONE      // fused activation (common.h ACT_* macro)
#endif

// r = B^T a for one 6-vector (B^T rows: 4 0 -5 0 1 0 / 0 -4 -4 1 1 0 /
// 0 4 -4 -1 1 0 / 0 -2 -1 2 1 0 / 0 2 -1 -2 1 0 / 0 4 0 -5 0 1)
#define WINO_BT(a0, a1, a2, a3, a4, a5, r0, r1, r2, r3, r4, r5) \
    do { \
        r0 = 4.0f * (a0) - 5.0f * (a2) + (a4); \
        r1 = -4.0f * ((a1) + (a2)) + (a3) + (a4); \
        r2 = 4.0f * ((a1) - (a2)) - (a3) + (a4); \
        r3 = 2.0f * ((a3) - (a1)) - (a2) + (a4); \
        r4 = 2.0f * ((a1) - (a3)) - (a2) + (a4); \
        r5 = 4.0f * (a1) - 5.0f * (a3) + (a5); \
    } while (0)

// r = A^T a (A^T rows: 1 1 1 1 1 0 / 0 1 -1 2 -2 0 / 0 1 1 4 4 0 / 0 1 -1 8 -8 1)
#define WINO_AT(a0, a1, a2, a3, a4, a5, r0, r1, r2, r3) \
    do { \
        const float p12 = (a1) + (a2), m12 = (a1) - (a2); \
        const float p34 = (a3) + (a4), m34 = (a3) - (a4); \
        r0 = (a0) + p12 + p34; \
        r1 = m12 + 2.0f * m34; \
        r2 = p12 + 4.0f * p34; \
        r3 = m12 + 8.0f * m34 + (a5); \
    } while (0)

// One work-item per (input channel, tile); dimension 0 walks channels so that
// neighbouring work-items write neighbouring elements of V[z][t][c].
// geo: (H, W, tiles across, tiles per image); pad: (top, left).
__kernel void winograd_input(__global const STORE_T *x, __global STORE_T *v,
                             const int C, const int T, const int4 geo, const int4 pad)
{
    const int c = get_global_id(0);
    const int t = get_global_id(1);
    if (c >= C || t >= T)
        return;
    const int H = geo.s0, W = geo.s1;
    const int image = t / geo.s3, r = t % geo.s3;
    const int y0 = (r / geo.s2) * 4 - pad.s0;
    const int x0 = (r % geo.s2) * 4 - pad.s1;
    __global const STORE_T *plane = x + ((size_t)image * C + c) * H * W;
    float d[6][6];
    #pragma unroll
    for (int i = 0; i < 6; ++i) {
        const int iy = y0 + i;
        #pragma unroll
        for (int j = 0; j < 6; ++j) {
            const int ix = x0 + j;
            d[i][j] = (iy >= 0 && iy < H && ix >= 0 && ix < W) ? LOADF(plane, iy * W + ix)
                                                                 : 0.0f;
        }
    }
    float u[6][6];
    #pragma unroll
    for (int j = 0; j < 6; ++j)
        WINO_BT(d[0][j], d[1][j], d[2][j], d[3][j], d[4][j], d[5][j],
                u[0][j], u[1][j], u[2][j], u[3][j], u[4][j], u[5][j]);
    const size_t plane_size = (size_t)T * C;
    __global STORE_T *dst = v + (size_t)t * C + c;
    #pragma unroll
    for (int i = 0; i < 6; ++i) {
        float w0, w1, w2, w3, w4, w5;
        WINO_BT(u[i][0], u[i][1], u[i][2], u[i][3], u[i][4], u[i][5], w0, w1, w2, w3, w4, w5);
        STOREF(dst, (6 * i + 0) * plane_size, w0);
        STOREF(dst, (6 * i + 1) * plane_size, w1);
        STOREF(dst, (6 * i + 2) * plane_size, w2);
        STOREF(dst, (6 * i + 3) * plane_size, w3);
        STOREF(dst, (6 * i + 4) * plane_size, w4);
        STOREF(dst, (6 * i + 5) * plane_size, w5);
    }
}

// One work-item per (output channel, tile): reads the 36 GEMM results
// M[z][t][co], writes up to 4x4 outputs of y[image][co] (clipped at the
// edges) as act(value + bias[co] + residual).  geo: (OH, OW, tiles across,
// tiles per image).
__kernel void winograd_output(__global const STORE_T *m, __global STORE_T *y,
                              __global const STORE_T *bias, __global const STORE_T *res,
                              const int M, const int T, const int4 geo)
{
    const int co = get_global_id(0);
    const int t = get_global_id(1);
    if (co >= M || t >= T)
        return;
    const size_t plane_size = (size_t)T * M;
    __global const STORE_T *src = m + (size_t)t * M + co;
    float s[6][6];
    #pragma unroll
    for (int i = 0; i < 6; ++i)
        #pragma unroll
        for (int j = 0; j < 6; ++j)
            s[i][j] = LOADF(src, (6 * i + j) * plane_size);
    float u[4][6];
    #pragma unroll
    for (int j = 0; j < 6; ++j)
        WINO_AT(s[0][j], s[1][j], s[2][j], s[3][j], s[4][j], s[5][j],
                u[0][j], u[1][j], u[2][j], u[3][j]);
#ifdef HAS_BIAS
    const float b = LOADF(bias, co);
#else
    const float b = 0.0f;
#endif
    const int OH = geo.s0, OW = geo.s1;
    const int image = t / geo.s3, r = t % geo.s3;
    const int oy0 = (r / geo.s2) * 4, ox0 = (r % geo.s2) * 4;
    const size_t base = ((size_t)image * M + co) * OH * OW;
    #pragma unroll
    for (int i = 0; i < 4; ++i) {
        const int oy = oy0 + i;
        if (oy >= OH)
            break;
        float o[4];
        WINO_AT(u[i][0], u[i][1], u[i][2], u[i][3], u[i][4], u[i][5], o[0], o[1], o[2], o[3]);
        #pragma unroll
        for (int j = 0; j < 4; ++j) {
            const int ox = ox0 + j;
            if (ox < OW) {
                const size_t at = base + oy * OW + ox;
                float val = o[j] + b;
#ifdef HAS_RESIDUAL
                val += LOADF(res, at);
#endif
                STOREF(y, at, ACT(val));
            }
        }
    }
}
