// Register-blocked GEMM with a fused epilogue:
//   C[z][m][n] = ACT(sum_k A[z][m][k] * B[z][k][n] + bias + R[z][m][n])
// Each work-item computes a TM x TN tile of C with TN-wide float vectors.
// B is always packed in column panels Bp[z][N/TN][K][TN] (zero-padded), so
// the inner loop streams one contiguous vector per k.  A is either packed in
// row panels Ap[z][M/TM][K][TM] (constant weights, packed once at load:
// -DA_PACKED) or row-major with leading dimension lda (activations).
// Batch index z maps to operand batches as ((z / div) % mod) * stride + base,
// which covers plain batches, broadcast batches and convolution groups.
#include "common.h"

#ifndef TM
  #define TM 4              // rows of C per work-item
#endif
#ifndef TN
  #define TN 16             // columns of C per work-item: 4, 8 or 16
#endif
#ifndef ACT
  #define ACT ACT_NONE      // fused activation (see common.h)
#endif

#define VT CAT(float, TN)

__kernel void gemm(__global const STORE_T *A, __global const STORE_T *B,
                   __global STORE_T *C, __global const STORE_T *bias,
                   __global const STORE_T *R,
                   const int M, const int N, const int K, const int lda,
                   const int4 za, const int4 zb, const int4 zc,
                   const int bias_zstride)
{
    const int nb = get_global_id(0);
    const int mb = get_global_id(1);
    const int z = get_global_id(2);
    const int n0 = nb * TN;
    const int m0 = mb * TM;
    if (n0 >= N || m0 >= M)
        return;
    const int za_idx = (z / za.s0) % za.s1;
    const int zb_idx = (z / zb.s0) % zb.s1;
    __global const STORE_T *bp = B + zb.s3 + zb_idx * zb.s2 + nb * K * TN;
#ifdef A_PACKED
    __global const STORE_T *ap = A + za.s3 + za_idx * za.s2 + mb * K * TM;
#else
    __global const STORE_T *arow[TM];
    for (int i = 0; i < TM; ++i)
        arow[i] = A + za.s3 + za_idx * za.s2 + min(m0 + i, M - 1) * lda;
#endif

    VT acc[TM];
    for (int i = 0; i < TM; ++i)
        acc[i] = (VT)(0.0f);

    int k = 0;
    for (; k + 4 <= K; k += 4) {
        float a[TM][4];
#ifdef A_PACKED
        float t[4 * TM];
        for (int j = 0; j < TM; ++j)
            vstore4(LOADFN(4, ap, k * TM + 4 * j), j, t);
        for (int kk = 0; kk < 4; ++kk)
            for (int i = 0; i < TM; ++i)
                a[i][kk] = t[kk * TM + i];
#else
        for (int i = 0; i < TM; ++i)
            vstore4(LOADFN(4, arow[i], k), 0, a[i]);
#endif
        for (int kk = 0; kk < 4; ++kk) {
            const VT bv = LOADFN(TN, bp, (k + kk) * TN);
            for (int i = 0; i < TM; ++i)
                acc[i] = a[i][kk] * bv + acc[i];
        }
    }
    for (; k < K; ++k) {
        const VT bv = LOADFN(TN, bp, k * TN);
        for (int i = 0; i < TM; ++i) {
#ifdef A_PACKED
            const float av = LOADF(ap, k * TM + i);
#else
            const float av = LOADF(arow[i], k);
#endif
            acc[i] = av * bv + acc[i];
        }
    }

    for (int i = 0; i < TM; ++i) {
        const int m = m0 + i;
        if (m >= M)
            break;
        VT v = acc[i];
#ifdef ALPHA
        v *= ALPHA;
#endif
#ifdef BIAS_ROW
        v += LOADF(bias, za_idx * bias_zstride + m);
#endif
#ifdef BIAS_COL
        v += LOADFN(TN, bias, za_idx * bias_zstride + n0);  // padded to TN
#endif
        const int c_off = zc.s1 + z * zc.s0 + m * zc.s2 + n0;
        if (n0 + TN <= N) {
#ifdef RESIDUAL
            v += LOADFN(TN, R, c_off);
#endif
            v = ACT(v);
            STOREFN(TN, C, c_off, v);
        } else {
            float t[TN];
            CAT(vstore, TN)(v, 0, t);
            for (int j = 0; j < N - n0; ++j) {
                float s = t[j];
#ifdef RESIDUAL
                s += LOADF(R, c_off + j);
#endif
                STOREF(C, c_off + j, ACT(s));
            }
        }
    }
}
