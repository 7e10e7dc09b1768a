// Number-format conversions: fp32 <-> fp16 storage (mixed precision),
// integer quantize and dequantize (8/16-bit and 2/4-bit; per tensor, per
// axis or per block; float8/float4 through a float tensor), an integer
// GEMM with int32 accumulation (MatMulInteger, ConvInteger, QLinearMatMul,
// QLinearConv) and its im2col, and the dequantization of int8 weights.
// Integer operand types come in as -D defines (A_T=char, B_T=uchar, ...).
#include "common.h"

#ifndef X_T
  #define X_T char          // integer type of a quantized input
#endif
#ifndef Y_T
  #define Y_T char          // integer type of a quantized output
#endif
#ifndef ZP_T
  #define ZP_T Y_T          // zero-point type
#endif
#ifndef QMIN
  #define QMIN -128         // saturation range of Y_T
#endif
#ifndef QMAX
  #define QMAX 127
#endif
#ifndef A_T
  #define A_T char          // qgemm: element type of A
#endif
#ifndef B_T
  #define B_T char          // qgemm: element type of B
#endif
#ifndef TM
  #define TM 4              // qgemm: rows of C per work-item
#endif
#ifndef TN
  #define TN 4              // qgemm: columns of C per work-item
#endif
#ifndef WG
  #define WG 256            // minmax: work-group size (a power of two)
#endif

// -- storage conversion: IN_HALF / OUT_HALF pick each side's storage -------
#ifdef IN_HALF
  #define IN_ST half
  #define LOAD_IN(p, i) vload_half((i), (p))
#else
  #define IN_ST float
  #define LOAD_IN(p, i) ((p)[i])
#endif
#ifdef OUT_HALF
  #define OUT_ST half
  #define STORE_OUT(p, i, v) vstore_half((v), (i), (p))
#else
  #define OUT_ST float
  #define STORE_OUT(p, i, v) ((p)[i] = (v))
#endif

__kernel void convert_storage(__global const IN_ST *x, __global OUT_ST *y, const int n)
{
    const int i = get_global_id(0);
    if (i < n)
        STORE_OUT(y, i, LOAD_IN(x, i));
}

// -- QuantizeLinear / DequantizeLinear ------------------------------------
// The scale / zero point of element i sits at
//   (i / (inner * axis)) * st.s0 + ((i / inner) % axis) / block * st.s1
//   + (i % inner) * st.s2,   with geo = (inner, axis, block):
// per tensor all strides are 0, per axis st = (0, 1, 0), blocked
// (opset 21) st = (blocks * inner, inner, 1).  Rounding is to nearest even
// (rint), as ONNX specifies.  2/4-bit integers travel one per uchar; Y_ENC
// (of X) / X_DEC, ZP_DEC (of B) are their bit conversions, from the Cast
// table.  With -DQ_FLOAT the quantizer writes the unrounded x / s + zp as a
// float tensor (the host then casts it to a float8/float4 type), and with
// -DX_FLOAT the dequantizer reads x and zp as float tensors.
#ifndef Y_ENC
  #define Y_ENC X           // integer -> Y_T bits
#endif
#ifndef X_DEC
  #define X_DEC B           // X_T bits -> integer
#endif
#ifndef ZP_DEC
  #define ZP_DEC B          // ZP_T bits -> integer
#endif

static inline int saturate_q(float v)
{
    return (int)clamp(v, (float)QMIN, (float)QMAX);
}

static inline int q_index(const int i, const int4 geo, const int4 st)
{
    const int outer = i / (geo.s0 * geo.s1);
    const int a = (i / geo.s0) % geo.s1;
    return outer * st.s0 + (a / geo.s2) * st.s1 + (i % geo.s0) * st.s2;
}

#ifdef Q_FLOAT
  #define QY_T STORE_T
  #define QZ_T STORE_T
#else
  #define QY_T Y_T
  #define QZ_T ZP_T
static inline Y_T enc_y(const int X)
{
    return (Y_T)(Y_ENC);
}

static inline int dec_zp(const ZP_T B)
{
    return (int)(ZP_DEC);
}
#endif

#ifdef X_FLOAT
  #define DX_T STORE_T
#else
  #define DX_T X_T
static inline int dec_x(const X_T B)
{
    return (int)(X_DEC);
}
#endif

#ifdef DYNAMIC
// scale and zero point of DynamicQuantizeLinear from the min/max scratch
static inline float dyn_scale(__global const float *mm)
{
    const float lo = fmin(mm[0], 0.0f), hi = fmax(mm[1], 0.0f);
    return (hi - lo) / (float)(QMAX - QMIN);
}

static inline float dyn_zero(__global const float *mm, const float scale)
{
    return scale > 0.0f ? (float)saturate_q(rint((float)QMIN - fmin(mm[0], 0.0f) / scale)) : 0.0f;
}
#endif

__kernel void quantize_linear(__global const STORE_T *x, __global const STORE_T *scale,
                              __global const QZ_T *zero, __global const float *minmax,
                              __global QY_T *y, const int n, const int4 geo, const int4 st)
{
    const int i = get_global_id(0);
    if (i >= n)
        return;
    const int c = q_index(i, geo, st);
#ifdef DYNAMIC
    const float s = dyn_scale(minmax);
    const float zp = dyn_zero(minmax, s);
    const float q = s > 0.0f ? rint(LOADF(x, i) / s) : 0.0f;
#else
    const float s = LOADF(scale, c);
  #if defined(NO_ZP)
    const float zp = 0.0f;
  #elif defined(Q_FLOAT)
    const float zp = LOADF(zero, c);
  #else
    const float zp = (float)dec_zp(zero[c]);
  #endif
  #ifndef Q_FLOAT
    const float q = rint(LOADF(x, i) / s);
  #endif
#endif
#ifdef Q_FLOAT
    STOREF(y, i, LOADF(x, i) / s + zp);
#else
    y[i] = enc_y(saturate_q(q + zp));
#endif
}

__kernel void dequantize_linear(__global const DX_T *x, __global const STORE_T *scale,
                                __global const DX_T *zero, __global STORE_T *y, const int n,
                                const int4 geo, const int4 st)
{
    const int i = get_global_id(0);
    if (i >= n)
        return;
    const int c = q_index(i, geo, st);
#if defined(X_FLOAT) && defined(NO_ZP)
    const float v = LOADF(x, i);
#elif defined(X_FLOAT)
    const float v = LOADF(x, i) - LOADF(zero, c);
#elif defined(NO_ZP)
    const float v = (float)dec_x(x[i]);
#else
    const float v = (float)(dec_x(x[i]) - dec_x(zero[c]));
#endif
    STOREF(y, i, v * LOADF(scale, c));
}

// DynamicQuantizeLinear, step 1: min and max of x in one work-group; writes
// them to `minmax` (fp32 scratch) and the scale / zero-point outputs.
__kernel void minmax(__global const STORE_T *x, const int n, __global float *mm,
                     __global STORE_T *scale_out, __global uchar *zero_out)
{
    __local float lo[WG], hi[WG];
    const int t = get_local_id(0);
    float a = INFINITY, b = -INFINITY;
    for (int i = t; i < n; i += WG) {
        const float v = LOADF(x, i);
        a = fmin(a, v);
        b = fmax(b, v);
    }
    lo[t] = a;
    hi[t] = b;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = WG / 2; s > 0; s >>= 1) {
        if (t < s) {
            lo[t] = fmin(lo[t], lo[t + s]);
            hi[t] = fmax(hi[t], hi[t + s]);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (t == 0) {
        mm[0] = lo[0];
        mm[1] = hi[0];
        const float l = fmin(lo[0], 0.0f), h = fmax(hi[0], 0.0f);
        const float s = (h - l) / 255.0f;
        STOREF(scale_out, 0, s);
        zero_out[0] = s > 0.0f ? (uchar)clamp(rint(-l / s), 0.0f, 255.0f) : (uchar)0;
    }
}

// -- integer GEMM: C[z][m][n] = sum_k (A[z][m][k] - za[m]) * (B[z][k][n] - zb[n])
// za/zb hold zero points with element strides zs.s0 (per row) / zs.s1 (per
// column), 0 for one per tensor.  Batch z maps to each operand as
// ((z / div) % mod) * stride + base (int4 zA, zB) and to C as z * zC.s0 + zC.s1.
// Per-row data (za, sa, bias) is indexed by the global row
// ((z / zA.s0) % zA.s1) * row_z + m, so conv groups find their channels.
// Epilogue: int32 C, or with -DREQUANT the QLinear requantization
//   y = sat(rint((acc + bias[row]) * sa[row] * sb[n] / sy) + yzp).
#ifdef REQUANT
  #define C_T Y_T
#else
  #define C_T int
#endif

__kernel void qgemm(__global const A_T *A, __global const B_T *B, __global C_T *C,
                    __global const A_T *za, __global const B_T *zb, const int4 zs,
                    const int M, const int N, const int K, const int lda, const int ldb,
                    const int4 zA, const int4 zB, const int4 zC, const int row_z,
                    __global const int *bias, __global const STORE_T *sa,
                    __global const STORE_T *sb, __global const STORE_T *sy,
                    __global const Y_T *yzp)
{
    const int n0 = get_global_id(0) * TN;
    const int m0 = get_global_id(1) * TM;
    const int z = get_global_id(2);
    if (n0 >= N || m0 >= M)
        return;
    const int a_batch = (z / zA.s0) % zA.s1;
    __global const A_T *a = A + zA.s3 + a_batch * zA.s2;
    const int row0 = a_batch * row_z;
    __global const B_T *b = B + zB.s3 + ((z / zB.s0) % zB.s1) * zB.s2;
    int acc[TM][TN];
    int ra[TM], rb[TN];
    for (int i = 0; i < TM; ++i) {
        ra[i] = (int)za[(row0 + min(m0 + i, M - 1)) * zs.s0];
        for (int j = 0; j < TN; ++j)
            acc[i][j] = 0;
    }
    for (int j = 0; j < TN; ++j)
        rb[j] = (int)zb[min(n0 + j, N - 1) * zs.s1];
    for (int k = 0; k < K; ++k) {
        int bv[TN];
        for (int j = 0; j < TN; ++j)
            bv[j] = (int)b[k * ldb + min(n0 + j, N - 1)] - rb[j];
        for (int i = 0; i < TM; ++i) {
            const int av = (int)a[min(m0 + i, M - 1) * lda + k] - ra[i];
            for (int j = 0; j < TN; ++j)
                acc[i][j] += av * bv[j];
        }
    }
    __global C_T *c = C + zC.s1 + z * zC.s0;
    for (int i = 0; i < TM && m0 + i < M; ++i) {
        const int m = m0 + i;
        for (int j = 0; j < TN && n0 + j < N; ++j) {
            const int n = n0 + j;
#ifdef REQUANT
            int v = acc[i][j];
  #ifdef HAS_BIAS
            v += bias[row0 + m];
  #endif
            const float mult = LOADF(sa, (row0 + m) * zs.s2) * LOADF(sb, n * zs.s3) / LOADF(sy, 0);
  #ifdef NO_YZP
            const float yz = 0.0f;
  #else
            const float yz = (float)yzp[0];
  #endif
            c[m * N + n] = (Y_T)saturate_q(rint((float)v * mult + yz));
#else
            c[m * N + n] = acc[i][j];
#endif
        }
    }
}

// im2col for the integer conv: out[z][k][p] row-major, padding holds the
// input zero point so that it contributes nothing after subtraction.
__kernel void qim2col(__global const B_T *x, __global B_T *out, __global const B_T *xzp,
                      const int x_off, const int c_group, const int H, const int W,
                      const int OH, const int OW, const int K, const int4 kern,
                      const int4 pad_dil)
{
    const int p = get_global_id(0);
    const int k = get_global_id(1);
    const int z = get_global_id(2);
    if (p >= OH * OW)
        return;
    const int kh = kern.s0, kw = kern.s1;
    const int kx = k % kw, ky = (k / kw) % kh, c = k / (kw * kh);
    const int oy = p / OW, ox = p % OW;
    const int iy = oy * kern.s2 - pad_dil.s0 + ky * pad_dil.s2;
    const int ix = ox * kern.s3 - pad_dil.s1 + kx * pad_dil.s3;
    B_T v = xzp[0];
    if (iy >= 0 && iy < H && ix >= 0 && ix < W)
        v = x[x_off + (z * c_group + c) * H * W + iy * W + ix];
    out[(z * K + k) * (OH * OW) + p] = v;
}

// Weight-only int8: w[e] = q[e] * scale[(e / kt) * t + e % t], where the
// weight's layout is [..., K, T] with one scale per (..., t) output channel.
__kernel void dequant_weight(__global const char *q, __global const STORE_T *scale,
                             __global STORE_T *w, const int n, const int kt, const int t)
{
    const int e = get_global_id(0);
    if (e < n)
        STOREF(w, e, (float)q[e] * LOADF(scale, (e / kt) * t + e % t));
}
