// One templated kernel for every elementwise, broadcasting and data-movement
// op.  The op is an expression in a, b, c (the loaded inputs, as CT) chosen
// with -DEXPR; shapes and strides arrive as int8 arguments, so one build
// serves every shape.  Output index i is split into coordinates over RANK
// dims (after the host has merged contiguous dims), and each operand's
// element offset is its base plus coordinates times its strides.  Strides of
// 0 broadcast; permuted strides transpose; a base offset slices.
#include "common.h"

#ifndef NIN
  #define NIN 1            // number of inputs used (1..3)
#endif
#ifndef RANK
  #define RANK 1           // dims after merging (1..8)
#endif
#ifndef EXPR
  #define EXPR a           // result as a function of a, b, c (and P0, P1)
#endif
#ifndef CT
  #define CT float         // compute type
#endif
// CT_VLOAD(n, p, i) / CT_VSTORE(n, p, i, v): n elements of CT at the __global
// pointer p + i, for the raw copies (n = VEC, or 8: copy_tiles); see
// VLOADG in common.h (PyPI's PoCL calls vload8 out of line)
#ifdef VLOAD_U
  #ifdef VEC
    UNALIGNED_VEC(CT, VEC, clnet_ct_vec_u)
  #endif
  UNALIGNED_VEC(CT, 8, clnet_ct8_u)
  #define CT_U_TYPE(n) CT_U_TYPE_##n
  #define CT_U_TYPE_8 clnet_ct8_u
  #define CT_U_TYPE_VEC clnet_ct_vec_u
  #define CT_VLOAD(n, p, i) (*(const __global CT_U_TYPE(n) *)((p) + (i)))
  #define CT_VSTORE(n, p, i, v) (*(__global CT_U_TYPE(n) *)((p) + (i)) = (v))
#else
  #define CT_VLOAD(n, p, i) CAT(vload, n)(0, (p) + (i))
  #define CT_VSTORE(n, p, i, v) CAT(vstore, n)((v), 0, (p) + (i))
#endif
// Per-operand storage.  By default an operand is a float tensor in the
// session's storage type (STORE_T).  -DA_RAW -DA_T=long (likewise B_, C_,
// OUT_) makes it a plain array of that C type, converted to/from CT.
#ifdef OUT_RAW
  #define T_OUT OUT_T
  #define ST_OUT(p, i, v) ((p)[i] = (OUT_T)(v))
#else
  #define T_OUT STORE_T
  #define ST_OUT(p, i, v) STOREF(p, i, (float)(v))
#endif
#ifdef A_RAW
  #define T_A A_T
  #define LD_A(p, i) ((CT)(p)[i])
#else
  #define T_A STORE_T
  #define LD_A(p, i) LOADF(p, i)
#endif
#ifdef B_RAW
  #define T_B B_T
  #define LD_B(p, i) ((CT)(p)[i])
#else
  #define T_B STORE_T
  #define LD_B(p, i) LOADF(p, i)
#endif
#ifdef C_RAW
  #define T_C C_T
  #define LD_C(p, i) ((CT)(p)[i])
#else
  #define T_C STORE_T
  #define LD_C(p, i) LOADF(p, i)
#endif

// erf to within ~3e-7 relative: the Maclaurin series below 0.5, above it
// Abramowitz & Stegun 7.1.26 (absolute error 1.5e-7).  Several times
// faster than the built-in erf on CPU OpenCL runtimes.
inline float erf_fast(float x)
{
    const float ax = fabs(x);
    if (ax < 0.5f) {
        const float z = x * x;
        return x * (1.1283791671f + z * (-0.3761263890f + z * (0.1128379167f
               + z * (-0.0268661706f + z * (0.0052239776f + z * -0.0008548327f)))));
    }
    const float t = 1.0f / (1.0f + 0.3275911f * ax);
    const float poly = t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f
                       + t * (-1.453152027f + t * 1.061405429f))));
    return copysign(1.0f - poly * exp(-ax * ax), x);
}

#ifdef MINIFLOAT
// Casts to and from the narrow float types (float8 e4m3fn/e4m3fnuz/e5m2/
// e5m2fnuz, float4 e2m1, bfloat16), whose bits travel as uchar/ushort.  E and
// M are the exponent and mantissa widths; KIND says where the specials are:
// 0 IEEE-like (inf and NaNs at the top exponent), 1 "fn" (no inf, NaN is all
// ones), 2 "fnuz" (no inf, no -0, NaN is the sign bit alone), 3 none.
inline float mf_decode(uint b, int E, int M, int BIAS, int KIND)
{
    const uint sign = (b >> (E + M)) & 1u;
    const uint e = (b >> M) & ((1u << E) - 1u);
    const uint m = b & ((1u << M) - 1u);
    if (KIND == 2 && b == (1u << (E + M)))
        return NAN;
    if (KIND == 0 && e == (1u << E) - 1u)
        return m ? NAN : (sign ? -INFINITY : INFINITY);
    if (KIND == 1 && e == (1u << E) - 1u && m == (1u << M) - 1u)
        return NAN;
    const float v = e == 0 ? ldexp((float)m, 1 - BIAS - M)
                           : ldexp((float)(m | (1u << M)), (int)e - BIAS - M);
    return sign ? -v : v;
}

// Round to nearest even; out of range gives the largest finite value
// (MAXBITS) with SAT, else inf (KIND 0) or NaN.
inline uint mf_encode(float f, int E, int M, int BIAS, int KIND, uint MAXBITS, int SAT)
{
    // NaN: the lone sign bit for fnuz; float4 has none and takes -0 there too
    const uint nan_bits = KIND >= 2 ? (1u << (E + M)) : (1u << (E + M)) - 1u;
    if (isnan(f))
        return nan_bits;
    const uint sign = signbit(f) ? 1u : 0u;
    const float a = fabs(f);
    uint bits;
    if (isinf(a)) {
        bits = MAXBITS + 1u;
    } else if (a < ldexp(1.0f, 1 - BIAS)) {       // subnormal (or zero)
        bits = (uint)rint(ldexp(a, BIAS - 1 + M));
    } else {
        int ex;
        frexp(a, &ex);                            // a = f * 2^ex, f in [0.5, 1)
        const uint q = (uint)rint(ldexp(a, M - (ex - 1)));  // in [2^M, 2^(M+1)]
        bits = ((uint)(ex - 1 + BIAS) << M) + (q - (1u << M));
    }
    if (bits > MAXBITS) {
        if (SAT || KIND == 3)
            bits = MAXBITS;
        else if (KIND == 0)
            bits = ((1u << E) - 1u) << M;
        else
            return nan_bits;
    }
    if (KIND == 2 && bits == 0)
        return 0;                                 // fnuz has no negative zero
    return (sign << (E + M)) | bits;
}

// A float64 given as its bits, rounded to float (BitCast to double when
// doubles are computed as float).
inline float f64_decode(ulong b)
{
    const int e = (int)((b >> 52) & 0x7FFUL);
    const float m = (float)(b & 0xFFFFFFFFFFFFFUL) * 0x1p-52f;
    float v = e == 0x7FF ? (m != 0.0f ? NAN : INFINITY)
                         : (e == 0 ? ldexp(m, -1022) : ldexp(1.0f + m, e - 1023));
    return (b >> 63) ? -v : v;
}

// float8 e8m0 (a power of two, bias 127, 0xFF is NaN): ROUND 0 up, 1 down,
// 2 nearest, as ONNX's Cast round_mode.
inline float e8m0_decode(uint b)
{
    // 2^(b - 127) built from its bits: ldexp's result for b = 0 (2^-127, a
    // denormal) is flushed to zero on devices without denormals (Mesa's llvmpipe)
    return b == 0xFFu ? NAN : as_float(b == 0u ? 0x00400000u : b << 23);
}

inline uint e8m0_encode(float f, int ROUND, int SAT)
{
    const uint bits = as_uint(f);
    const uint e = (bits >> 23) & 0xFFu;
    if (e == 0xFFu)
        return 0xFFu;
    uint up = 0;
    if (ROUND == 0)
        up = (bits & 0x7FFFFFu) != 0;
    else if (ROUND == 2)
        up = (bits & 0x400000u) && ((bits & 0x200000u) || (bits & 0x1FFFFFu) || e > 0);
    if (SAT && e == 0xFEu)
        up = 0;
    return (e + up) & 0xFFu;
}

inline uint bf16_encode(float f)
{
    if (isnan(f))
        return 0x7FC0u;
    const uint u = as_uint(f);
    return (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
}
#endif

#define STEP(d)                                              \
    if (RANK > d) {                                          \
        const int coord = rem % shape.s##d;                  \
        rem /= shape.s##d;                                   \
        o_out += coord * s_out.s##d;                         \
        o_a += coord * s_a.s##d;                             \
        o_b += coord * s_b.s##d;                             \
        o_c += coord * s_c.s##d;                             \
    }

__kernel void elementwise(__global T_OUT *out, __global const T_A *in_a,
                          __global const T_B *in_b, __global const T_C *in_c,
                          const int total, const int8 shape, const int8 s_out,
                          const int8 s_a, const int8 s_b, const int8 s_c,
                          const int4 base)
{
#ifdef VEC
    // -DVEC=n: a raw copy (Transpose, Concat, Slice, ...) whose innermost dim
    // is contiguous on both sides and a multiple of n long: n elements per
    // work-item in one vector (the driver's vectorisation across work-items
    // made gathers of the index arithmetic: BERT's head transposes ran at ~1
    // GB/s); -DVREPS=r: r vectors of one run per work-item (a CPU: fewer
    // work-items, so less index arithmetic per element)
  #ifndef VREPS
    #define VREPS 1
  #endif
    const int i = get_global_id(0) * (VEC * VREPS);
#else
    const int i = get_global_id(0);
#endif
    if (i >= total)
        return;
    int o_out = base.s0, o_a = base.s1, o_b = base.s2, o_c = base.s3;
#if RANK == 1
    // one merged dim (the common case): no index arithmetic beyond strides
    o_out += i * s_out.s0;
    o_a += i * s_a.s0;
    o_b += i * s_b.s0;
    o_c += i * s_c.s0;
#else
    int rem = i;
    STEP(7) STEP(6) STEP(5) STEP(4) STEP(3) STEP(2) STEP(1) STEP(0)
#endif
#ifdef VEC
    #pragma unroll
    for (int r = 0; r < VREPS; ++r)
        CT_VSTORE(VEC, out, o_out + r * VEC, CT_VLOAD(VEC, in_a, o_a + r * VEC));
    return;
#endif
    const CT a = LD_A(in_a, o_a);
#if NIN > 1
    const CT b = LD_B(in_b, o_b);
#endif
#if NIN > 2
    const CT c = LD_C(in_c, o_c);
#endif
    ST_OUT(out, o_out, (EXPR));
}


#ifdef TILE
// -DTILE=8 (with the raw-copy defines): a copy whose output is contiguous
// along its innermost dim and whose input is contiguous along another one,
// as Transpose with perm [0, 2, 3, 1] (attention's K^T, NCHW -> NHWC), where
// no run is contiguous on both sides: each work-item moves an 8 x 8 tile,
// 8 vector loads along the input's contiguous dim, a transpose in
// registers, 8 vector stores along the output's (the element-wise kernel
// gathered one element per work-item).  shape, s_out, s_in: the tile grid
// and its strides; tile_strides: (output stride along the input's
// contiguous dim, input stride along the output's innermost dim).
#if TILE != 8
  #error "TILE is 8"
#endif
#define TVT CAT(CT, 8)
#define TSTEP(d)                                             \
    if (RANK > d) {                                          \
        const int coord = rem % shape.s##d;                  \
        rem /= shape.s##d;                                   \
        o_out += coord * s_out.s##d;                         \
        o_in += coord * s_in.s##d;                           \
    }
#define TCOL(u) ((TVT)(v[0].s##u, v[1].s##u, v[2].s##u, v[3].s##u, \
                       v[4].s##u, v[5].s##u, v[6].s##u, v[7].s##u))

__kernel void copy_tiles(__global CT *out, __global const CT *in, const int tiles,
                         const int8 shape, const int8 s_out, const int8 s_in,
                         const int2 base, const int2 tile_strides)
{
    const int i = get_global_id(0);
    if (i >= tiles)
        return;
    int o_out = base.s0, o_in = base.s1, rem = i;
    TSTEP(7) TSTEP(6) TSTEP(5) TSTEP(4) TSTEP(3) TSTEP(2) TSTEP(1) TSTEP(0)
    TVT v[8];       // v[t]: the 8 inputs along the input's contiguous dim, at output offset t
    #pragma unroll
    for (int t = 0; t < 8; ++t)
        v[t] = CT_VLOAD(8, in, o_in + t * tile_strides.s1);
    __global CT *o = out + o_out;
    const int q = tile_strides.s0;
    CT_VSTORE(8, o, 0, TCOL(0));
    CT_VSTORE(8, o, q, TCOL(1));
    CT_VSTORE(8, o, 2 * q, TCOL(2));
    CT_VSTORE(8, o, 3 * q, TCOL(3));
    CT_VSTORE(8, o, 4 * q, TCOL(4));
    CT_VSTORE(8, o, 5 * q, TCOL(5));
    CT_VSTORE(8, o, 6 * q, TCOL(6));
    CT_VSTORE(8, o, 7 * q, TCOL(7));
}
#endif


#ifdef ROWS
// -DROWS=n: a raw copy whose runs along the innermost dim are not whole
// vectors (a crop, a reversal, a depth-to-space): a work-item copies up to n
// elements of one row, the outer dims' offsets worked out once per run
// (per element, the integer divisions cost ~2-9 ns an element on PoCL:
// a 1x64x56x56 crop took 1.8 ms).  shape, s_out, s_in: the outer dims
// (0 .. RANK-2) and their strides; inner_s: both strides along the row.
#define RSTEP(d)                                             \
    if (RANK - 1 > d) {                                      \
        const int coord = rem % shape.s##d;                  \
        rem /= shape.s##d;                                   \
        o_out += coord * s_out.s##d;                         \
        o_in += coord * s_in.s##d;                           \
    }

__kernel void copy_rows(__global CT *out, __global const CT *in, const int rows,
                        const int inner, const int8 shape, const int8 s_out,
                        const int8 s_in, const int2 base, const int2 inner_s)
{
    const int runs = (inner + ROWS - 1) / ROWS;
    const int gid = get_global_id(0);
    if (gid >= rows * runs)
        return;
    const int row = gid / runs;
    const int j0 = (gid - row * runs) * ROWS;
    int o_out = base.s0, o_in = base.s1, rem = row;
    RSTEP(6) RSTEP(5) RSTEP(4) RSTEP(3) RSTEP(2) RSTEP(1) RSTEP(0)
    const int end = min(j0 + ROWS, inner);
    for (int j = j0; j < end; ++j)
        out[o_out + j * inner_s.s0] = in[o_in + j * inner_s.s1];
}
#endif
