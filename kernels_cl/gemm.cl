// Register-blocked GEMM with a fused epilogue:
//   C[z][m][n] = act(alpha * sum_k A[z][m][k] * B[z][k][n] + bias + R[z][m][n])
// The epilogue is chosen by run-time arguments (epi flags, alpha and the
// activation's parameters), not defines, so one build serves every layer
// with the same tiling: fewer programs to compile when a model loads.
// Each work-item computes a TM x (TN x NP) tile of C held in TM * (TN / VW)
// * NP float vectors of width VW (-DNP=2: two panels of B side by side).
// B is packed in column panels Bp[z][N/TN][K][TN] (zero-padded), so the
// inner loop streams contiguous vectors.  A is either
// packed in row panels Ap[z][M/TM][K][TM] (constant weights, packed once at
// load: -DA_PACKED) or row-major with leading dimension lda (activations).
// In half storage A is read along K in vload_half4 loads (a scalar
// vload_half is a slow software conversion on some CPUs), unless -DA_FLOAT
// makes it a float array; in float storage one element at a time (-DA_VEC4:
// float4 loads there too).
// Batch index z maps to operand batches as ((z / div) % mod) * stride + base,
// which covers plain batches, broadcast batches and convolution groups.
// -DB_ROWMAJOR: B is read in place, row-major with leading dimension ldb
// (1x1 convolutions, activations): no packing copy; needs N >= TN, and the
// last column tile is shifted left to overlap its neighbour instead of
// reading past the row.
// Split-K (-DKSPLIT=S): dimension 2 runs z * S + s, each slice sums K / S
// steps and writes its partial tile to C + s * zc.s3; a reduction adds them.
// Multiply-adds are written as a * b + c (not fma()): one compiler turns a
// vector fma() into an out-of-line call, and -cl-mad-enable lets both fuse.
#include "common.h"

#ifndef TM
  #define TM 4              // rows of C per work-item
#endif
#ifndef TN
  #define TN 16             // columns of C per work-item (a multiple of VW)
#endif
#ifndef VW
  #define VW 16             // float vector width of the accumulators: 4, 8 or 16
#endif
#ifndef KSPLIT
  #define KSPLIT 1          // slices of K computed by separate work-items
#endif
#ifndef NT
  #define NT 1              // tiles per work-item, along grid dimension 0
#endif
#ifndef NP
  #define NP 1              // packed B panels per tile, read side by side (TN * NP columns)
#endif
// -DGROUP_M=G: tiles in grouped order (G row tiles per column panel) over a
// grid (tiles / NT, batch x KSPLIT); M_FIRST does not apply.
// -DM_FIRST: dimension 0 walks rows of tiles (work-items next to each other
// share a B panel) instead of columns (they share rows of A).

#define VT CAT(float, VW)
#define NV (TN / VW)
#define NVP (NV * NP)       // vectors per row of a tile
#define TNP (TN * NP)       // columns per tile
#if NP > 1 && defined(B_ROWMAJOR)
  #error "NP > 1 reads packed panels"
#endif
#define EPI_VW VW
#include "epilogue.h"

// -DA_FLOAT: A is float whatever the storage (a half activation converted
// once before a large GEMM, so that A need not go through float4 loads and
// lane shuffles; B, C, bias and R keep STORE_T).
#ifdef A_FLOAT
  #define A_T float
  #define LOADA(p, i) ((p)[i])
#else
  #define A_T STORE_T
  #define LOADA(p, i) LOADF(p, i)
#endif
// -DB_FLOAT: B is float whatever the storage (a half B converted once before
// a large GEMM: F16C conversions of B in the inner loop cost 20-25% of fp32
// speed at n=1024).
#if defined(B_FLOAT) || !defined(STORE_HALF)
  #define B_T float
  #define LOADB(n, p, i) VLOADG(n, p, i)
#else
  #define B_T STORE_T
  #define LOADB(n, p, i) LOADFN(n, p, i)
#endif
#ifdef A_PACKED
  #define A_AT(i, k) LOADA(ap, (k) * TM + (i))
#else
  #define A_AT(i, k) LOADA(arow[i], (k))
#endif

// acc += A[:, kk] x B[kk, :] for one k
#define GEMM_STEP(kk) \
    do { \
        _Pragma("unroll") \
        for (int j = 0; j < NVP; ++j) { \
            const VT bv = LOADB(VW, bp[j / NV], B_ROW(kk) + (j % NV) * VW); \
            _Pragma("unroll") \
            for (int i = 0; i < TM; ++i) \
                acc[i][j] = A_AT(i, (kk)) * bv + acc[i][j]; \
        } \
    } while (0)

// One TM x TN tile of C: column tile nb, row tile mb, batch (x KSPLIT) zk.
inline void gemm_tile(__global const A_T *A, __global const B_T *B,
                      __global STORE_T *C, __global const STORE_T *bias,
                      __global const STORE_T *R,
                      const int M, const int N, const int K, const int lda,
                      const int4 za, const int4 zb, const int4 zc,
                      const int bias_zstride, const int ldb,
                      const int epi, const float4 epf, const int nb, const int mb, const int zk)
{
    const int m0 = mb * TM;
    if (nb * TNP >= N || m0 >= M)
        return;
#ifdef B_ROWMAJOR
    const int n0 = min(nb * TN, N - TN);
#else
    const int n0 = nb * TNP;
#endif
#if KSPLIT > 1
    const int z = zk / KSPLIT;
    const int slice = zk % KSPLIT;
    const int k_step = ((K + KSPLIT - 1) / KSPLIT + 3) & ~3;
    const int k_begin = min(K, slice * k_step);
    const int k_end = min(K, k_begin + k_step);
#else
    const int z = zk;
    const int k_begin = 0;
    const int k_end = K;
#endif
    // (batch 0, the only one of most GEMMs, without the integer divisions:
    // they cost as much as a few k steps, once per tile)
    const int za_idx = z == 0 ? 0 : (z / za.s0) % za.s1;
    const int zb_idx = z == 0 ? 0 : (z / zb.s0) % zb.s1;
    __global const B_T *bp[NP];
#ifdef B_ROWMAJOR
    bp[0] = B + zb.s3 + zb_idx * zb.s2 + n0;
    #define B_ROW(k) ((k) * ldb)
#else
    // NP panels side by side: NP streams of B in flight instead of one (a
    // matrix-vector product is bound by them); a panel past the last reads
    // the last, its columns are not stored
    #pragma unroll
    for (int p = 0; p < NP; ++p)
        bp[p] = B + zb.s3 + zb_idx * zb.s2
                + (size_t)min(nb * NP + p, (N - 1) / TN) * K * TN;
    #define B_ROW(k) ((k) * TN)
#endif
#ifdef A_PACKED
    __global const A_T *ap = A + za.s3 + za_idx * za.s2 + mb * K * TM;
#else
    __global const A_T *arow[TM];
    #pragma unroll
    for (int i = 0; i < TM; ++i)
        arow[i] = A + za.s3 + za_idx * za.s2 + min(m0 + i, M - 1) * lda;
#endif

    VT acc[TM][NVP];
    #pragma unroll
    for (int i = 0; i < TM; ++i)
        #pragma unroll
        for (int j = 0; j < NVP; ++j)
            acc[i][j] = (VT)(0.0f);

    int k = k_begin;
#if defined(A_VEC4) || (defined(STORE_HALF) && !defined(A_FLOAT))
    for (; k + 4 <= k_end; k += 4) {
        float4 a4[TM];
#ifdef A_PACKED
        float t[4 * TM];
        #pragma unroll
        for (int j = 0; j < TM; ++j)
            vstore4(LOADFN(4, ap, k * TM + 4 * j), j, t);
        #pragma unroll
        for (int i = 0; i < TM; ++i)
            a4[i] = (float4)(t[i], t[TM + i], t[2 * TM + i], t[3 * TM + i]);
#else
        #pragma unroll
        for (int i = 0; i < TM; ++i)
            a4[i] = LOADFN(4, arow[i], k);
#endif
        __global const B_T *bk[NP];
        #pragma unroll
        for (int p = 0; p < NP; ++p)
            bk[p] = bp[p] + B_ROW(k);
        #pragma unroll
        for (int j = 0; j < NVP; ++j) {
            const VT b0 = LOADB(VW, bk[j / NV], (j % NV) * VW);
            #pragma unroll
            for (int i = 0; i < TM; ++i)
                acc[i][j] = a4[i].s0 * b0 + acc[i][j];
        }
        #pragma unroll
        for (int j = 0; j < NVP; ++j) {
            const VT b1 = LOADB(VW, bk[j / NV], B_ROW(1) + (j % NV) * VW);
            #pragma unroll
            for (int i = 0; i < TM; ++i)
                acc[i][j] = a4[i].s1 * b1 + acc[i][j];
        }
        #pragma unroll
        for (int j = 0; j < NVP; ++j) {
            const VT b2 = LOADB(VW, bk[j / NV], B_ROW(2) + (j % NV) * VW);
            #pragma unroll
            for (int i = 0; i < TM; ++i)
                acc[i][j] = a4[i].s2 * b2 + acc[i][j];
        }
        #pragma unroll
        for (int j = 0; j < NVP; ++j) {
            const VT b3 = LOADB(VW, bk[j / NV], B_ROW(3) + (j % NV) * VW);
            #pragma unroll
            for (int i = 0; i < TM; ++i)
                acc[i][j] = a4[i].s3 * b3 + acc[i][j];
        }
    }
#else
    // A read one element at a time: a scalar load feeding a vector multiply-add
    // becomes a broadcast from memory (no shuffle on the FMA ports).
    for (; k + 4 <= k_end; k += 4) {
        GEMM_STEP(k);
        GEMM_STEP(k + 1);
        GEMM_STEP(k + 2);
        GEMM_STEP(k + 3);
    }
#endif
    for (; k < k_end; ++k)
        GEMM_STEP(k);

#if KSPLIT > 1
    // partial sums: the epilogue runs in the reduction kernel
    __global STORE_T *part = C + slice * zc.s3;
    #pragma unroll
    for (int i = 0; i < TM && m0 + i < M; ++i)
        #pragma unroll
        for (int j = 0; j < NVP; ++j) {
            const int c_off = z * zc.s0 + (m0 + i) * zc.s2 + n0 + j * VW;
            if (n0 + j * VW < N) {
                const int n_left = N - n0 - j * VW;
                if (n_left >= VW) {
                    STOREFN(VW, part, c_off, acc[i][j]);
                } else {
                    float t[VW];
                    CAT(vstore, VW)(acc[i][j], 0, t);
                    for (int q = 0; q < n_left; ++q)
                        STOREF(part, c_off + q, t[q]);
                }
            }
        }
#else
    if (epi == 0 && epf.s0 == 1.0f && m0 + TM <= M && n0 + TNP <= N) {
        // a whole tile of a plain product: stores only (1-2% of a large
        // GEMM's time went to the general path's checks)
        #pragma unroll
        for (int i = 0; i < TM; ++i)
            #pragma unroll
            for (int j = 0; j < NVP; ++j)
                STOREFN(VW, C, zc.s1 + z * zc.s0 + (m0 + i) * zc.s2 + n0 + j * VW, acc[i][j]);
        return;
    }
    #pragma unroll
    for (int i = 0; i < TM; ++i) {
        const int m = m0 + i;
        if (m >= M)
            break;
        #pragma unroll
        for (int j = 0; j < NVP; ++j) {
            const int n = n0 + j * VW;
            if (n >= N)
                break;
            VT v = acc[i][j] * epf.s0;
            if (epi & EPI_BIAS_ROW)
                v += LOADF(bias, za_idx * bias_zstride + m);
            if (epi & EPI_BIAS_COL)
                v += LOADFN(VW, bias, za_idx * bias_zstride + n);  // padded to TN
            epi_store(C, R, zc.s1 + z * zc.s0 + m * zc.s2 + n, N - n, v, epi, epf);
        }
    }
#endif
}

// Each work-item computes NT tiles next to each other along grid dimension 0
// (columns, or rows with M_FIRST): fewer, longer work-items when K is short.
__kernel void gemm(__global const A_T *A, __global const B_T *B,
                   __global STORE_T *C, __global const STORE_T *bias,
                   __global const STORE_T *R,
                   const int M, const int N, const int K, const int lda,
                   const int4 za, const int4 zb, const int4 zc,
                   const int bias_zstride, const int ldb,
                   const int epi, const float4 epf)   // epf: alpha, p0, p1
{
#ifdef GROUP_M
    // Grouped order: consecutive work-items walk GROUP_M row tiles of one
    // column panel, then the next panel, so that a block of A rows stays in
    // the cache while B streams past it once per block (not once per row tile).
    // The grid is one-dimensional here: tile ids NT * gid0 + t, the first
    // placed by divisions, the next ones by stepping from it.
    const int n_tiles = (N + TNP - 1) / TNP, m_tiles = (M + TM - 1) / TM;
    int id = get_global_id(0) * NT;
    if (id >= n_tiles * m_tiles)
        return;
    int first_m = id / (GROUP_M * n_tiles) * GROUP_M;
    int rows = min(m_tiles - first_m, GROUP_M);
    const int in_group = id % (GROUP_M * n_tiles);
    int nb = in_group / rows, mb = first_m + in_group % rows;
    for (int t = 0; t < NT; ++t) {
        gemm_tile(A, B, C, bias, R, M, N, K, lda, za, zb, zc, bias_zstride, ldb, epi, epf,
                  nb, mb, get_global_id(1));
        if (++id >= n_tiles * m_tiles)
            return;
        if (++mb == first_m + rows) {       // the group's next column panel
            mb = first_m;
            if (++nb == n_tiles) {          // the next group of row tiles
                nb = 0;
                first_m += GROUP_M;
                mb = first_m;
                rows = min(m_tiles - first_m, GROUP_M);
            }
        }
    }
    return;
#endif
    for (int t = 0; t < NT; ++t) {
#ifdef M_FIRST
        const int nb = get_global_id(1), mb = get_global_id(0) * NT + t;
#else
        const int nb = get_global_id(0) * NT + t, mb = get_global_id(1);
#endif
        gemm_tile(A, B, C, bias, R, M, N, K, lda, za, zb, zc, bias_zstride, ldb, epi, epf,
                  nb, mb, get_global_id(2));
    }
}

// Split-K reduction with the epilogue: C = act(alpha * sum_s P[s] + bias + R).
// One work-item per output element; P holds KSPLIT partial C's of zc.s3
// elements each, laid out like C without its base offset.
__kernel void gemm_reduce(__global const STORE_T *P, __global STORE_T *C,
                          __global const STORE_T *bias, __global const STORE_T *R,
                          const int M, const int N, const int4 za, const int4 zc,
                          const int bias_zstride, const int epi, const float4 epf)
{
    const int n = get_global_id(0);
    const int m = get_global_id(1);
    const int z = get_global_id(2);
    if (n >= N || m >= M)
        return;
    const int off = z * zc.s0 + m * zc.s2 + n;
    float s = 0.0f;
    for (int q = 0; q < KSPLIT; ++q)
        s += LOADF(P, q * zc.s3 + off);
    s *= epf.s0;
    const int za_idx = (z / za.s0) % za.s1;
    if (epi & EPI_BIAS_ROW)
        s += LOADF(bias, za_idx * bias_zstride + m);
    if (epi & EPI_BIAS_COL)
        s += LOADF(bias, za_idx * bias_zstride + n);
    if (epi & EPI_RESIDUAL)
        s += LOADF(R, zc.s1 + off);
    STOREF(C, zc.s1 + off, act_one(s, epi >> 8, epf.s1, epf.s2));
}
