// Winograd F(4x4, 3x3) and F(2x2, 3x3) for 3x3 stride-1 convolutions (Lavin
// and Gray, 2016): each m x m output tile is Y = A^T [(G g G^T) .* (B^T d B)] A,
// where d is the (m+2) x (m+2) input patch and g the 3x3 filter.  Summed over
// input channels, the (m+2)^2 element-wise products become independent GEMMs
// (gemm.cl, batch z = position in the input tile), with 4x (m = 4) or 2.25x
// (m = 2) fewer multiply-adds than direct convolution:
//   M[z][co][t] = sum_ci U[z][co][ci] * V[z][ci][t]
// U = G g G^T is computed once at load (clnet/ops/conv/winograd.py) and packed as
// gemm.cl's A panels; V and M are row-major, tiles t along their rows, which
// are TS >= T elements long (T rounded up to 16: rows start 64-byte aligned;
// columns past T are never written by the transforms nor read from M).  This
// file has the two data transforms, each in two forms: one tile per
// work-item (winograd_input, winograd_output) or a tile row's tiles in
// vectors (winograd_input_rows, winograd_output_rows: CPUs).  The input
// transform writes V = B^T d B for every tile and input channel, the output
// transform applies A^T . A and the epilogue (bias, residual, activation)
// and writes the NCHW output.  With tiles along the rows, a CPU's vectors
// run along the tiles on both sides: contiguous stores of V and loads of M
// (along the channels each lane had its own plane).  A build holds one of
// the four kernels (-DTL: a row kernel, -DWINO_OUT: an output transform),
// so that a model compiles only what it launches.  ResNet-18's 56 x 56
// layers on PoCL/AVX-512: input transforms 0.26 -> 0.17 ms, output ones
// 0.19-0.27 -> 0.10.
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
// 0 2 -1 -2 1 0 / 0 4 0 -5 0 1), on arrays of scalars or vectors
#define WINO_BT(a, r) do { \
    r[0] = 4.0f * a[0] - 5.0f * a[2] + a[4]; \
    r[1] = -4.0f * (a[1] + a[2]) + a[3] + a[4]; \
    r[2] = 4.0f * (a[1] - a[2]) - a[3] + a[4]; \
    r[3] = 2.0f * (a[3] - a[1]) - a[2] + a[4]; \
    r[4] = 2.0f * (a[1] - a[3]) - a[2] + a[4]; \
    r[5] = 4.0f * a[1] - 5.0f * a[3] + a[5]; } while (0)

// r = A^T a (rows 1 1 1 1 1 0 / 0 1 -1 2 -2 0 / 0 1 1 4 4 0 / 0 1 -1 8 -8 1)
#define WINO_AT(a, r) do { \
    r[0] = a[0] + (a[1] + a[2]) + (a[3] + a[4]); \
    r[1] = (a[1] - a[2]) + 2.0f * (a[3] - a[4]); \
    r[2] = (a[1] + a[2]) + 4.0f * (a[3] + a[4]); \
    r[3] = (a[1] - a[2]) + 8.0f * (a[3] - a[4]) + a[5]; } while (0)
#elif WINO_M == 2
// B^T rows 1 0 -1 0 / 0 1 1 0 / 0 -1 1 0 / 0 1 0 -1
#define WINO_BT(a, r) do { \
    r[0] = a[0] - a[2]; \
    r[1] = a[1] + a[2]; \
    r[2] = a[2] - a[1]; \
    r[3] = a[1] - a[3]; } while (0)

// A^T rows 1 1 1 0 / 0 1 -1 -1
#define WINO_AT(a, r) do { \
    r[0] = a[0] + a[1] + a[2]; \
    r[1] = a[1] - a[2] - a[3]; } while (0)
#else
  #error "WINO_M must be 2 or 4"
#endif

#if !defined(TL) && !defined(WINO_OUT)
// One work-item per (tile, input channel); dimension 0 walks the tiles, so
// that neighbouring work-items write neighbouring elements of V[z][c][t].
// geo: (H, W, tiles across, tiles per image); pad: (top, left); grid: (TS, C).
__kernel void winograd_input(__global const STORE_T *x, __global STORE_T *v,
                             const int C, const int T, const int4 geo, const int4 pad)
{
    const int t = get_global_id(0);
    const int c = get_global_id(1);
    const int TS = get_global_size(0);      // row length of V[z][c][.]
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
        WINO_BT(d[j], col);
        #pragma unroll
        for (int i = 0; i < WINO_A; ++i)
            u[i][j] = col[i];
    }
    const size_t plane_size = (size_t)TS * C;
    __global STORE_T *dst = v + (size_t)c * TS + t;
    #pragma unroll
    for (int i = 0; i < WINO_A; ++i) {
        float row[WINO_A];
        WINO_BT(u[i], row);
        #pragma unroll
        for (int j = 0; j < WINO_A; ++j)
            STOREF(dst, (WINO_A * i + j) * plane_size, row[j]);
    }
}
#endif

#ifdef TL
// winograd_input_rows: one input channel and a block of tile rows per
// work-item, TL tiles of a row at a time in vectors of TL lanes (a CPU's
// explicit SIMD, where the driver's own vectorisation across work-items
// gathers): each of the WINO_A input rows is read as WINO_M + 1 contiguous
// vectors (masked at the image's edges), each lane's window columns are
// picked from them by constant shuffles, and the transformed tiles go out as
// vector stores to V[z][c][t].  geo: (H, W, tiles across, tiles per image);
// pad: (top, left, elements of x, tile rows per work-item); grid: (images x
// blocks of tile rows, C).
#define TLV CAT(float, TL)
#define TLI CAT(int, TL)
#if TL == 16
  #define IOTA_INT (int16)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
#elif TL == 8
  #define IOTA_INT (int8)(0, 1, 2, 3, 4, 5, 6, 7)
#else
  #error "TL must be 8 or 16"
#endif

// Lanes l of column k: element WINO_M * l + k of the segment (constant
// swizzles); columns k >= WINO_M are columns k - WINO_M one lane on, the
// last lane from the segment's next vector.
#if WINO_M == 4 && TL == 8
  #define PICK4(s, c) (float8)(s[0].c, s[1].c, s[2].c, s[3].c)
  #define PICK_COLUMNS(s, d) do { \
      d[0] = PICK4(s, s04); d[1] = PICK4(s, s15); d[2] = PICK4(s, s26); d[3] = PICK4(s, s37); \
      d[4] = (float8)(d[0].s1234, d[0].s567, s[4].s0); \
      d[5] = (float8)(d[1].s1234, d[1].s567, s[4].s1); } while (0)
#elif WINO_M == 4 && TL == 16
  #define PICK4(s, c) (float16)(s[0].c, s[1].c, s[2].c, s[3].c)
  #define PICK_COLUMNS(s, d) do { \
      d[0] = PICK4(s, s048c); d[1] = PICK4(s, s159d); d[2] = PICK4(s, s26ae); \
      d[3] = PICK4(s, s37bf); \
      d[4] = (float16)(d[0].s1234, d[0].s5678, d[0].s9abc, d[0].sdef, s[4].s0); \
      d[5] = (float16)(d[1].s1234, d[1].s5678, d[1].s9abc, d[1].sdef, s[4].s1); } while (0)
#elif WINO_M == 2 && TL == 8
  #define PICK_COLUMNS(s, d) do { \
      d[0] = (float8)(s[0].even, s[1].even); d[1] = (float8)(s[0].odd, s[1].odd); \
      d[2] = (float8)(d[0].s1234, d[0].s567, s[2].s0); \
      d[3] = (float8)(d[1].s1234, d[1].s567, s[2].s1); } while (0)
#elif WINO_M == 2 && TL == 16
  #define PICK_COLUMNS(s, d) do { \
      d[0] = (float16)(s[0].even, s[1].even); d[1] = (float16)(s[0].odd, s[1].odd); \
      d[2] = (float16)(d[0].s1234, d[0].s5678, d[0].s9abc, d[0].sdef, s[2].s0); \
      d[3] = (float16)(d[1].s1234, d[1].s5678, d[1].s9abc, d[1].sdef, s[2].s1); } while (0)
#endif


// The tile rows [begin, end) of one image (.s2) that work-item gid0 runs:
// blocks of `block` rows, ceil(rows / block) per image.
inline int3 tile_row_block(const int gid0, const int rows_per_image, const int block)
{
    const int blocks = (rows_per_image + block - 1) / block;
    const int begin = (gid0 % blocks) * block;
    return (int3)(begin, min(rows_per_image, begin + block), gid0 / blocks);
}

// Lanes [0, n) of v to p[0, n): one vector store, or runs of 8, 4, 2 and 1.
// Out of line (COLD_CALL): only the few vectors at a plane's or the
// buffer's end take it, and each inlined copy of these edge paths had added
// to the seconds a CPU compiler spends on a model's first run.
COLD_CALL void store_lanes(__global float *p, const TLV v, const int n)
{
    if (n == TL) {
        VSTOREG(TL, p, 0, v);
        return;
    }
    float t[TL];
    CAT(vstore, TL)(v, 0, t);
    int at = 0;
#if TL > 8
    if (n & 8) {
        vstore8(vload8(0, t), 0, p);
        at = 8;
    }
#endif
    if (n & 4) {
        vstore4(vload4(0, t + at), 0, p + at);
        at += 4;
    }
    if (n & 2) {
        vstore2(vload2(0, t + at), 0, p + at);
        at += 2;
    }
    if (n & 1)
        p[at] = t[at];
}

#ifndef WINO_OUT
// TL elements p[0, TL) of an image row whose first is column ix0, zero
// outside columns [0, W), each loaded on its own: the buffer's first and
// last rows, where a vector load could leave the buffer (out of line, as
// store_lanes).
COLD_CALL TLV load_row_edge(__global const float *p, const int ix0, const int W)
{
    float t[TL];
    for (int l = 0; l < TL; ++l)
        t[l] = ix0 + l >= 0 && ix0 + l < W ? p[l] : 0.0f;
    return CAT(vload, TL)(0, t);
}

__kernel void winograd_input_rows(__global const float *x, __global float *v,
                                  const int C, const int TS, const int4 geo, const int4 pad)
{
    const int c = get_global_id(1);
    const int H = geo.s0, W = geo.s1, across = geo.s2, per_image = geo.s3;
    const int3 rows = tile_row_block(get_global_id(0), per_image / across, pad.s3);
    const int ty_begin = rows.s0, ty_end = rows.s1, image = rows.s2;
    if (c >= C)
        return;
    const int plane_at = (image * C + c) * H * W, total = pad.s2;
    const size_t plane_size = (size_t)TS * C;
    for (int ty = ty_begin; ty < ty_end; ++ty)
    for (int tx0 = 0; tx0 < across; tx0 += TL) {
        const int t0 = image * per_image + ty * across + tx0;
        const int lanes = min(TL, across - tx0);
        const int x0 = tx0 * WINO_M - pad.s1;
        const int need = lanes * WINO_M + 2;        // elements of a row segment in use
        TLV w[WINO_A][WINO_A];       // w[i][j]: input row i times B (the row transform)
        // rows in a loop, not unrolled: unrolled, the edge cases of every row
        // made the kernel larger than the instruction cache
        for (int i = 0; i < WINO_A; ++i) {
            const int y = ty * WINO_M - pad.s0 + i;
            // the row segment: WINO_M + 1 vectors, zeros outside the image
            TLV seg[WINO_M + 1];
            #pragma unroll
            for (int q = 0; q <= WINO_M; ++q) {
                const int ix0 = x0 + q * TL;
                const int at = plane_at + y * W + ix0;
                if (y < 0 || y >= H || q * TL >= need) {
                    seg[q] = (TLV)(0.0f);
                } else if (ix0 >= 0 && ix0 + TL <= W) {
                    seg[q] = VLOADG(TL, x, at);
                } else if (at >= 0 && at + TL <= total) {
                    // across the row's ends: the neighbouring elements of
                    // the buffer, zeroed
                    const TLI ix = (TLI)(ix0) + IOTA_INT;
                    seg[q] = ix >= (TLI)(0) && ix < (TLI)(W) ? VLOADG(TL, x, at) : (TLV)(0.0f);
                } else {
                    seg[q] = load_row_edge(x + at, ix0, W);
                }
            }
            // column k of lane l's window is element WINO_M * l + k of the segment
        TLV d[WINO_A];
        PICK_COLUMNS(seg, d);
            WINO_BT(d, w[i]);
        }
        // A chunk short of TL tiles spills its last lanes into the next
        // tiles, which this work-item writes next, where those lie in its own
        // block of tile rows (rows shorter than TL tiles spill past the next
        // row: into another work-item's block near the block's end).
        const bool whole = lanes == TL || (ty_end - 1 - ty) * across >= TL - lanes;
        __global float *dst = v + (size_t)c * TS + t0;
        #pragma unroll
        for (int j = 0; j < WINO_A; ++j) {
            TLV col[WINO_A], r[WINO_A];
            #pragma unroll
            for (int i = 0; i < WINO_A; ++i)
                col[i] = w[i][j];
            WINO_BT(col, r);
            #pragma unroll
            for (int i = 0; i < WINO_A; ++i) {
                if (whole)
                    VSTOREG(TL, dst, (WINO_A * i + j) * plane_size, r[i]);
                else
                    store_lanes(dst + (WINO_A * i + j) * plane_size, r[i], lanes);
            }
        }
    }
}
#endif
#endif

#if !defined(TL) && defined(WINO_OUT)
// One work-item per (tile, output channel), tiles along dimension 0: reads
// the (m+2)^2 GEMM results M[z][co][t], writes up to m x m outputs of y[image][co] (clipped at the
// edges) as ACT(value + bias[co] + residual), with -DHAS_BIAS and
// -DHAS_RESIDUAL.  The epilogue is compiled in, not chosen at run time as in
// gemm.cl: a switch inside this per-element loop kept the driver from
// vectorising across work-items (ResNet-18's output transforms 1.5 -> 4-6 ms).
// geo: (OH, OW, tiles across, tiles per image); grid: (TS, M).
__kernel void winograd_output(__global const STORE_T *m, __global STORE_T *y,
                              __global const STORE_T *bias, __global const STORE_T *res,
                              const int M, const int T, const int4 geo)
{
    const int t = get_global_id(0);
    const int co = get_global_id(1);
    if (co >= M || t >= T)
        return;
    const int TS = get_global_size(0);
    const size_t plane_size = (size_t)TS * M;
    __global const STORE_T *src = m + (size_t)co * TS + t;
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
        WINO_AT(s[j], col);
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
        WINO_AT(u[i], o);
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
#endif

#if defined(TL) && defined(WINO_OUT)
// winograd_output_rows: one output channel and a block of tile rows per
// work-item, TL tiles of a row at a time in vectors (the counterpart of
// winograd_input_rows): the (m+2)^2 products are TL-wide vector loads of
// M[z][co][t], A^T . A runs on vectors, and each output row's m x TL values
// are interleaved by constant swizzles into m contiguous vectors, which take
// bias, residual and activation (epilogue.h's run-time epilogue: explicit
// vectors need no compiled-in one, and one program serves every layer) and
// are stored whole (masked at the image's right edge).  geo: (OH, OW, tiles
// across, tiles per image); blocks: (tile rows per work-item, elements of
// y); grid: (images x blocks of tile rows, M).

// Lanes [0, n) of a vector from p[0, n), the rest zero (n >= TL: one load;
// the rest out of line, as store_lanes).
COLD_CALL TLV load_lanes_edge(__global const float *p, const int n)
{
    float t[TL];
    for (int l = 0; l < TL; ++l)
        t[l] = l < n ? p[l] : 0.0f;
    return CAT(vload, TL)(0, t);
}

inline TLV load_lanes(__global const float *p, const int n)
{
    return n >= TL ? VLOADG(TL, p, 0) : load_lanes_edge(p, n);
}

// The row's output vectors: element e of the row is lane e / WINO_M of
// o[e % WINO_M] (constant swizzles; 8-tile vectors).
#if TL != 8
  #error "winograd_output_rows takes vectors of 8 tiles"
#endif
#if WINO_M == 4
  #define IL4(o, a, b) (float8)(o[0].a, o[1].a, o[2].a, o[3].a, o[0].b, o[1].b, o[2].b, o[3].b)
  #define INTERLEAVE(o, r) do { \
      r[0] = IL4(o, s0, s1); r[1] = IL4(o, s2, s3); \
      r[2] = IL4(o, s4, s5); r[3] = IL4(o, s6, s7); } while (0)
#else
  #define IL2(o, a, b, c, d) \
      (float8)(o[0].a, o[1].a, o[0].b, o[1].b, o[0].c, o[1].c, o[0].d, o[1].d)
  #define INTERLEAVE(o, r) do { \
      r[0] = IL2(o, s0, s1, s2, s3); r[1] = IL2(o, s4, s5, s6, s7); } while (0)
#endif

#define EPI_VW TL
#include "epilogue.h"

__kernel void winograd_output_rows(__global const float *m, __global float *y,
                                   __global const float *bias, __global const float *res,
                                   const int M, const int TS, const int4 geo, const int4 blocks,
                                   const int epi, const float4 epf)
{
    const int co = get_global_id(1);
    const int OH = geo.s0, OW = geo.s1, across = geo.s2, per_image = geo.s3;
    const int3 rows = tile_row_block(get_global_id(0), per_image / across, blocks.s0);
    const int ty_begin = rows.s0, ty_end = rows.s1, image = rows.s2, total = blocks.s1;
    if (co >= M)
        return;
    const TLV b = (TLV)((epi & EPI_BIAS_ROW) ? bias[co] : 0.0f);
    const int act = epi >> 8;
    const size_t plane_size = (size_t)TS * M;
    const int out_at = (image * M + co) * OH * OW;
    for (int ty = ty_begin; ty < ty_end; ++ty)
    for (int tx0 = 0; tx0 < across; tx0 += TL) {
        const int t0 = image * per_image + ty * across + tx0;
        __global const float *src = m + (size_t)co * TS + t0;
        const int tail = co + 1 < M ? TL : TS - t0;
        // u = A^T s over the rows i of the tile, s = the products (i, j)
        TLV u[WINO_M][WINO_A];
        #pragma unroll
        for (int j = 0; j < WINO_A; ++j) {
            TLV col[WINO_A], r[WINO_M];
            #pragma unroll
            for (int i = 0; i < WINO_A; ++i)   // whole vectors, except at the buffer's end
                col[i] = load_lanes(src + (WINO_A * i + j) * plane_size, tail);
            WINO_AT(col, r);
            #pragma unroll
            for (int i = 0; i < WINO_M; ++i)
                u[i][j] = r[i];
        }
        const int ox0 = tx0 * WINO_M;
        const int valid = min(WINO_M * TL, OW - ox0);     // outputs of each row in range
        TLV out[WINO_M][WINO_M];        // output row i, vector q
        #pragma unroll
        for (int i = 0; i < WINO_M; ++i) {
            TLV o[WINO_M];
            WINO_AT(u[i], o);
            INTERLEAVE(o, out[i]);
        }
        // the epilogue in loops left rolled: one copy of it, not m x m (each
        // copy had added to the time a CPU compiler takes on the first run)
        #pragma unroll 1
        for (int i = 0; i < WINO_M; ++i) {
            const int oy = ty * WINO_M + i;
            if (oy >= OH)
                break;
            const int row_at = out_at + oy * OW + ox0;
            #pragma unroll 1
            for (int q = 0; q < WINO_M; ++q) {
                const int n = valid - q * TL;
                if (n <= 0)
                    break;
                TLV val = out[i][q] + b;
                const int at = row_at + q * TL;
                if (epi & EPI_RESIDUAL)
                    val += load_lanes(res + at, at + TL <= total ? TL : n);
                val = act_vec(val, act, epf.s1, epf.s2);
                if (n >= TL)
                    VSTOREG(TL, y, row_at + q * TL, val);
                else
                    store_lanes(y + row_at + q * TL, val, n);
            }
        }
    }
}
#endif
