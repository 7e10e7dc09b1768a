// Winograd F(4x4, 3x3) and F(2x2, 3x3) for 3x3 stride-1 convolutions (Lavin
// and Gray, 2016): each m x m output tile is Y = A^T [(G g G^T) .* (B^T d B)] A,
// where d is the (m+2) x (m+2) input patch and g the 3x3 filter.  Summed over
// input channels, the (m+2)^2 element-wise products become independent GEMMs
// (gemm.cl, batch z = position in the input tile), with 4x (m = 4) or 2.25x
// (m = 2) fewer multiply-adds than direct convolution:
//   M[z][t][co] = sum_ci V[z][t][ci] * U[z][ci][co]
// U = G g G^T is computed once at load (clnet/ops/winograd.py); this file has
// the two data transforms: winograd_input writes V = B^T d B for every tile t
// and input channel, winograd_output applies A^T . A and the epilogue (bias,
// residual, activation) and writes the NCHW output.
#include "common.h"

#ifndef ACT
  #define ACT ACT_NONE      // fused activation (common.h ACT_* macro; P0, P1 its parameters)
#endif

#ifndef WINO_M
  #define WINO_M 4          // outputs per tile side: F(4x4, 3x3) or F(2x2, 3x3)
#endif
#define WINO_A (WINO_M + 2) // input tile side

#if WINO_M == 4
// r = B^T a (rows 4 0 -5 0 1 0 / 0 -4 -4 1 1 0 / 0 4 -4 -1 1 0 / 0 -2 -1 2 1 0 /
// 0 2 -1 -2 1 0 / 0 4 0 -5 0 1)
inline void wino_bt(const float *a, float *r)
{
    r[0] = 4.0f * a[0] - 5.0f * a[2] + a[4];
    r[1] = -4.0f * (a[1] + a[2]) + a[3] + a[4];
    r[2] = 4.0f * (a[1] - a[2]) - a[3] + a[4];
    r[3] = 2.0f * (a[3] - a[1]) - a[2] + a[4];
    r[4] = 2.0f * (a[1] - a[3]) - a[2] + a[4];
    r[5] = 4.0f * a[1] - 5.0f * a[3] + a[5];
}

// r = A^T a (rows 1 1 1 1 1 0 / 0 1 -1 2 -2 0 / 0 1 1 4 4 0 / 0 1 -1 8 -8 1)
inline void wino_at(const float *a, float *r)
{
    const float p12 = a[1] + a[2], m12 = a[1] - a[2];
    const float p34 = a[3] + a[4], m34 = a[3] - a[4];
    r[0] = a[0] + p12 + p34;
    r[1] = m12 + 2.0f * m34;
    r[2] = p12 + 4.0f * p34;
    r[3] = m12 + 8.0f * m34 + a[5];
}
#elif WINO_M == 2
// B^T rows 1 0 -1 0 / 0 1 1 0 / 0 -1 1 0 / 0 1 0 -1
inline void wino_bt(const float *a, float *r)
{
    r[0] = a[0] - a[2];
    r[1] = a[1] + a[2];
    r[2] = a[2] - a[1];
    r[3] = a[1] - a[3];
}

// A^T rows 1 1 1 0 / 0 1 -1 -1
inline void wino_at(const float *a, float *r)
{
    r[0] = a[0] + a[1] + a[2];
    r[1] = a[1] - a[2] - a[3];
}
#else
  #error "WINO_M must be 2 or 4"
#endif

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
    const int y0 = (r / geo.s2) * WINO_M - pad.s0;
    const int x0 = (r % geo.s2) * WINO_M - pad.s1;
    __global const STORE_T *plane = x + ((size_t)image * C + c) * H * W;
    float d[WINO_A][WINO_A];
    #pragma unroll
    for (int i = 0; i < WINO_A; ++i) {
        const int iy = y0 + i;
        #pragma unroll
        for (int j = 0; j < WINO_A; ++j) {
            const int ix = x0 + j;
            d[j][i] = (iy >= 0 && iy < H && ix >= 0 && ix < W) ? LOADF(plane, iy * W + ix)
                                                                 : 0.0f;
        }
    }
    // u = B^T d, one column at a time (d is held transposed), then rows: v = u B
    float u[WINO_A][WINO_A];
    #pragma unroll
    for (int j = 0; j < WINO_A; ++j) {
        float col[WINO_A];
        wino_bt(d[j], col);
        #pragma unroll
        for (int i = 0; i < WINO_A; ++i)
            u[i][j] = col[i];
    }
    const size_t plane_size = (size_t)T * C;
    __global STORE_T *dst = v + (size_t)t * C + c;
    #pragma unroll
    for (int i = 0; i < WINO_A; ++i) {
        float row[WINO_A];
        wino_bt(u[i], row);
        #pragma unroll
        for (int j = 0; j < WINO_A; ++j)
            STOREF(dst, (WINO_A * i + j) * plane_size, row[j]);
    }
}

// One work-item per (output channel, tile): reads the (m+2)^2 GEMM results
// M[z][t][co], writes up to m x m outputs of y[image][co] (clipped at the
// edges) as ACT(value + bias[co] + residual), with -DHAS_BIAS and
// -DHAS_RESIDUAL.  The epilogue is compiled in, not chosen at run time as in
// gemm.cl: a switch inside this per-element loop kept the driver from
// vectorising across work-items (ResNet-18's output transforms 1.5 -> 4-6 ms).
// geo: (OH, OW, tiles across, tiles per image).
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
    float s[WINO_A][WINO_A];    // held transposed: s[j][i] is position (i, j)
    #pragma unroll
    for (int i = 0; i < WINO_A; ++i)
        #pragma unroll
        for (int j = 0; j < WINO_A; ++j)
            s[j][i] = LOADF(src, (WINO_A * i + j) * plane_size);
    float u[WINO_M][WINO_A];    // A^T s
    #pragma unroll
    for (int j = 0; j < WINO_A; ++j) {
        float col[WINO_M];
        wino_at(s[j], col);
        #pragma unroll
        for (int i = 0; i < WINO_M; ++i)
            u[i][j] = col[i];
    }
#ifdef HAS_BIAS
    const float b = LOADF(bias, co);
#else
    const float b = 0.0f;
#endif
    const int OH = geo.s0, OW = geo.s1;
    const int image = t / geo.s3, r = t % geo.s3;
    const int oy0 = (r / geo.s2) * WINO_M, ox0 = (r % geo.s2) * WINO_M;
    const size_t base = ((size_t)image * M + co) * OH * OW;
    #pragma unroll
    for (int i = 0; i < WINO_M; ++i) {
        const int oy = oy0 + i;
        if (oy >= OH)
            break;
        float o[WINO_M];
        wino_at(u[i], o);
        #pragma unroll
        for (int j = 0; j < WINO_M; ++j) {
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
