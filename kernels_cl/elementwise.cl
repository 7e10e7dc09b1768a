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
    const int i = get_global_id(0);
    if (i >= total)
        return;
    int rem = i;
    int o_out = base.s0, o_a = base.s1, o_b = base.s2, o_c = base.s3;
    STEP(7) STEP(6) STEP(5) STEP(4) STEP(3) STEP(2) STEP(1) STEP(0)
    const CT a = LD_A(in_a, o_a);
#if NIN > 1
    const CT b = LD_B(in_b, o_b);
#endif
#if NIN > 2
    const CT c = LD_C(in_c, o_c);
#endif
    ST_OUT(out, o_out, (EXPR));
}
