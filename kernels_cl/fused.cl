// A fused chain of elementwise ops (ops/fused.py): up to 8 inputs x0..x7
// broadcast to the output's shape, and a body of temporaries,
// -DBODY=LET(t0,expr)LET(t1,expr)..., whose last one (-DRESULT) is stored.
// The body is written once and compiled twice: for VW-wide float vectors
// (a block of VW elements along the innermost dim per work-item: a vector
// load where an input runs along that dim, a splat where it is broadcast
// along it) and for scalars (a block's tail; every element when VW is 1).
// Vector math is what makes exp, tanh and erf cheap on CPU OpenCL: their
// scalar forms are out-of-line calls the work-item vectoriser keeps scalar.
#include "common.h"

#ifndef NIN
  #define NIN 1            // inputs (1..8)
#endif
#ifndef RANK
  #define RANK 1           // output dims after merging (1..8); the last is the rows'
#endif
#ifndef VW
  #define VW 1             // elements per work-item along the innermost dim
#endif
#ifndef BODY
  #define BODY LET(t0,x0)
#endif
#ifndef RESULT
  #define RESULT t0
#endif

// Per input k: -DXk_T its pointer's type (STORE_T for a float tensor, a C
// type for an integer or bool one), -DXk_L=F (float storage) or R (a C type
// converted to float), -DXk_V=V (runs along the innermost dim: stride 1,
// one vector load per block) or S (stride 0 there: one scalar, splat).
#ifndef X0_T
  #define X0_T STORE_T
#endif
#ifndef X1_T
  #define X1_T STORE_T
#endif
#ifndef X2_T
  #define X2_T STORE_T
#endif
#ifndef X3_T
  #define X3_T STORE_T
#endif
#ifndef X4_T
  #define X4_T STORE_T
#endif
#ifndef X5_T
  #define X5_T STORE_T
#endif
#ifndef X6_T
  #define X6_T STORE_T
#endif
#ifndef X7_T
  #define X7_T STORE_T
#endif

#ifndef X0_L
  #define X0_L F
#endif
#ifndef X0_V
  #define X0_V V
#endif
#ifndef X1_L
  #define X1_L F
#endif
#ifndef X1_V
  #define X1_V V
#endif
#ifndef X2_L
  #define X2_L F
#endif
#ifndef X2_V
  #define X2_V V
#endif
#ifndef X3_L
  #define X3_L F
#endif
#ifndef X3_V
  #define X3_V V
#endif
#ifndef X4_L
  #define X4_L F
#endif
#ifndef X4_V
  #define X4_V V
#endif
#ifndef X5_L
  #define X5_L F
#endif
#ifndef X5_V
  #define X5_V V
#endif
#ifndef X6_L
  #define X6_L F
#endif
#ifndef X6_V
  #define X6_V V
#endif
#ifndef X7_L
  #define X7_L F
#endif
#ifndef X7_V
  #define X7_V V
#endif

// erf to within ~3e-7 (as elementwise.cl's erf_fast), branch-free
#define ERF_BODY(FT)                                                           \
    const FT ax = fabs(x);                                                     \
    const FT z = x * x;                                                        \
    const FT small = x * (1.1283791671f + z * (-0.3761263890f + z * (0.1128379167f \
                     + z * (-0.0268661706f + z * (0.0052239776f + z * -0.0008548327f))))); \
    const FT t = 1.0f / (1.0f + 0.3275911f * ax);                              \
    const FT poly = t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f \
                    + t * (-1.453152027f + t * 1.061405429f))));               \
    const FT big = copysign(1.0f - poly * exp(-z), x);                         \
    return ax < 0.5f ? small : big;

// tanh through exp (several times faster than the built-in on CPU
// runtimes); an odd Taylor polynomial near 0, where 1 - e^-2|x| loses digits
#define TANH_BODY(FT)                                                          \
    const FT ax = fabs(x);                                                     \
    const FT e = exp(-2.0f * ax);                                              \
    const FT big = copysign((1.0f - e) / (1.0f + e), x);                       \
    const FT z = x * x;                                                        \
    const FT small = x * (1.0f + z * (-0.333333333f + z * (0.133333333f       \
                     + z * (-0.053968254f + z * (0.021869489f + z * -0.008863236f))))); \
    return ax < 0.125f ? small : big;

// pow through exp2/log2 (the built-in pow is ~100x slower on CPU runtimes):
// a negative base keeps its sign for odd integer exponents and gives NaN
// for other non-integers; pow(x, 0) is 1; pow(0, y) is 0 or inf
#define POW_BODY(FT)                                                           \
    const FT r = exp2(y * log2(fabs(x)));                                      \
    const FT odd = fabs(fmod(y, (FT)(2.0f))) == 1.0f ? -r : r;                 \
    const FT neg = rint(y) == y ? odd : (FT)(NAN);                             \
    const FT nz = x < 0.0f ? neg : r;                                          \
    const FT zero = y > 0.0f ? (FT)(0.0f) : (FT)(INFINITY);                    \
    const FT at0 = x == 0.0f ? zero : nz;                                      \
    return y == 0.0f ? (FT)(1.0f) : at0;

inline float erf_s(float x) { ERF_BODY(float) }
inline float tanh_s(float x) { TANH_BODY(float) }
inline float pow_s(float x, float y) { POW_BODY(float) }

#if VW > 1
  #define VT CAT(float, VW)
inline VT erf_v(VT x) { ERF_BODY(VT) }
inline VT tanh_v(VT x) { TANH_BODY(VT) }
inline VT pow_v(VT x, VT y) { POW_BODY(VT) }
  #define VLOAD_FV(k) LOADFN(VW, in##k, o##k + j)
  #define VLOAD_FS(k) ((VT)(LOADF(in##k, o##k)))
  #define VLOAD_RV(k) CAT(convert_float, VW)(CAT(vload, VW)(0, in##k + o##k + j))
  #define VLOAD_RS(k) ((VT)((float)in##k[o##k]))
  #define VLOAD(k) const VT x##k = CAT(VLOAD_, CAT(X##k##_L, X##k##_V))(k);
#endif
#define SLOAD_F(k) LOADF(in##k, o##k + e * i##k)
#define SLOAD_R(k) ((float)in##k[o##k + e * i##k])
#define SLOAD(k) const float x##k = CAT(SLOAD_, X##k##_L)(k);

#if NIN > 1
  #define LOADS2(L) L(0) L(1)
#else
  #define LOADS2(L) L(0)
#endif
#if NIN > 2
  #define LOADS3(L) LOADS2(L) L(2)
#else
  #define LOADS3(L) LOADS2(L)
#endif
#if NIN > 3
  #define LOADS4(L) LOADS3(L) L(3)
#else
  #define LOADS4(L) LOADS3(L)
#endif
#if NIN > 4
  #define LOADS5(L) LOADS4(L) L(4)
#else
  #define LOADS5(L) LOADS4(L)
#endif
#if NIN > 5
  #define LOADS6(L) LOADS5(L) L(5)
#else
  #define LOADS6(L) LOADS5(L)
#endif
#if NIN > 6
  #define LOADS7(L) LOADS6(L) L(6)
#else
  #define LOADS7(L) LOADS6(L)
#endif
#if NIN > 7
  #define LOADS(L) LOADS7(L) L(7)
#else
  #define LOADS(L) LOADS7(L)
#endif

#define OFFS(d) o0 += c * s0.s##d; o1 += c * s1.s##d; o2 += c * s2.s##d; \
                o3 += c * s3.s##d; o4 += c * s4.s##d; o5 += c * s5.s##d; \
                o6 += c * s6.s##d; o7 += c * s7.s##d;
#define OSTEP(d) if (RANK - 1 > d) { const int c = rem % shape.s##d; rem /= shape.s##d; OFFS(d) }

// rows x inner elements: shape/s0..s7 give the outer dims (0 .. RANK-2) of
// the output and the inputs' strides along them; inner_s the inputs'
// strides along the innermost dim.  The output is contiguous.
__kernel void fused(__global STORE_T *out,
                    __global const X0_T *in0, __global const X1_T *in1,
                    __global const X2_T *in2, __global const X3_T *in3,
                    __global const X4_T *in4, __global const X5_T *in5,
                    __global const X6_T *in6, __global const X7_T *in7,
                    const int rows, const int inner, const int8 shape,
                    const int8 s0, const int8 s1, const int8 s2, const int8 s3,
                    const int8 s4, const int8 s5, const int8 s6, const int8 s7,
                    const int8 inner_s)
{
    const int blocks = (inner + VW - 1) / VW;
    const int gid = get_global_id(0);
    if (gid >= rows * blocks)
        return;
    const int row = gid / blocks;
    const int j = (gid - row * blocks) * VW;
    int o0 = 0, o1 = 0, o2 = 0, o3 = 0, o4 = 0, o5 = 0, o6 = 0, o7 = 0;
    int rem = row;
    OSTEP(6) OSTEP(5) OSTEP(4) OSTEP(3) OSTEP(2) OSTEP(1) OSTEP(0)
    const int i0 = inner_s.s0, i1 = inner_s.s1, i2 = inner_s.s2, i3 = inner_s.s3;
    const int i4 = inner_s.s4, i5 = inner_s.s5, i6 = inner_s.s6, i7 = inner_s.s7;
    const int base = row * inner;
#if VW > 1
    if (j + VW <= inner) {
        #define ERF erf_v
        #define TANH tanh_v
        #define POW pow_v
        #define FT VT
        #define LET(n, v) const VT n = (v);
        LOADS(VLOAD)
        BODY
        STOREFN(VW, out, base + j, RESULT);
        #undef ERF
        #undef TANH
        #undef POW
        #undef FT
        #undef LET
    } else
#endif
    for (int e = j; e < min(j + VW, inner); ++e) {
        #define ERF erf_s
        #define TANH tanh_s
        #define POW pow_s
        #define FT float
        #define LET(n, v) const float n = (v);
        LOADS(SLOAD)
        BODY
        STOREF(out, base + e, RESULT);
    }
}


// The chain, then a softmax along each row (the innermost dim, `inner`
// long): one work-item per row computes the chain into out while keeping
// the row's max, then exponentiates and normalises in place (an additive
// attention mask or a position bias before a Softmax: one launch, not two).
__kernel void fused_softmax(__global STORE_T *out,
                            __global const X0_T *in0, __global const X1_T *in1,
                            __global const X2_T *in2, __global const X3_T *in3,
                            __global const X4_T *in4, __global const X5_T *in5,
                            __global const X6_T *in6, __global const X7_T *in7,
                            const int rows, const int inner, const int8 shape,
                            const int8 s0, const int8 s1, const int8 s2, const int8 s3,
                            const int8 s4, const int8 s5, const int8 s6, const int8 s7,
                            const int8 inner_s)
{
    const int row = get_global_id(0);
    if (row >= rows)
        return;
    int o0 = 0, o1 = 0, o2 = 0, o3 = 0, o4 = 0, o5 = 0, o6 = 0, o7 = 0;
    int rem = row;
    OSTEP(6) OSTEP(5) OSTEP(4) OSTEP(3) OSTEP(2) OSTEP(1) OSTEP(0)
    const int i0 = inner_s.s0, i1 = inner_s.s1, i2 = inner_s.s2, i3 = inner_s.s3;
    const int i4 = inner_s.s4, i5 = inner_s.s5, i6 = inner_s.s6, i7 = inner_s.s7;
    __global STORE_T *y = out + (size_t)row * inner;
    float mx = -INFINITY;
    int j = 0;
#if VW > 1
    VT mxv = (VT)(-INFINITY);
    for (; j + VW <= inner; j += VW) {
        #define ERF erf_v
        #define TANH tanh_v
        #define POW pow_v
        #define FT VT
        #define LET(n, v) const VT n = (v);
        LOADS(VLOAD)
        BODY
        STOREFN(VW, y, j, RESULT);
        mxv = FMAX(mxv, LOADFN(VW, y, j));    // as stored (half storage rounds)
        #undef ERF
        #undef TANH
        #undef POW
        #undef FT
        #undef LET
    }
    for (int l = 0; l < VW; ++l)
        mx = FMAX(mx, ((const float *)&mxv)[l]);
#endif
    for (int e = j; e < inner; ++e) {
        #define ERF erf_s
        #define TANH tanh_s
        #define POW pow_s
        #define FT float
        #define LET(n, v) const float n = (v);
        LOADS(SLOAD)
        BODY
        STOREF(y, e, RESULT);
        mx = FMAX(mx, LOADF(y, e));
        #undef ERF
        #undef TANH
        #undef POW
        #undef FT
        #undef LET
    }
    // exp and sum, then scale: in vectors too (vector exp is several times
    // the scalar's speed on CPU runtimes)
    float sum = 0.0f;
    j = 0;
#if VW > 1
    VT sumv = (VT)(0.0f);
    for (; j + VW <= inner; j += VW) {
        const VT v = exp(LOADFN(VW, y, j) - mx);
        sumv += v;
        STOREFN(VW, y, j, v);
    }
    for (int l = 0; l < VW; ++l)
        sum += ((const float *)&sumv)[l];
#endif
    for (int e = j; e < inner; ++e) {
        const float v = exp(LOADF(y, e) - mx);
        sum += v;
        STOREF(y, e, v);
    }
    const float inv = 1.0f / sum;
    j = 0;
#if VW > 1
    for (; j + VW <= inner; j += VW)
        STOREFN(VW, y, j, LOADFN(VW, y, j) * inv);
#endif
    for (int e = j; e < inner; ++e)
        STOREF(y, e, LOADF(y, e) * inv);
}
