// Resize/Upsample as one pass per resized axis.  The input is viewed as
// [outer][len_in][inner] and the output as [outer][len_out][inner]; output
// position j along the axis reads TAPS input positions idx[j][t] with
// weights w[j][t].  The host computes the tables once at load time for the
// mode (nearest, linear, cubic, antialiased) and the coordinate
// transformation, so one kernel serves them all.  Index -1 marks a position
// outside a tf_crop_and_resize region: it gets the extrapolation value.
#include "common.h"

#ifndef TAPS
  #define TAPS 2            // taps per output position
#endif
#ifndef T
  #define T uint            // element bits moved by resize_nearest
#endif

// Weights arrive as float bits in an int buffer so that half storage does
// not round them.
__kernel void resize_axis(__global const STORE_T *x, __global STORE_T *y,
                          __global const int *idx, __global const int *wbits,
                          const int inner, const int len_in, const int len_out,
                          const float extrapolation)
{
    const int i = get_global_id(0);
    const int j = get_global_id(1);
    const int o = get_global_id(2);
    const int base = o * len_in * inner + i;
    float acc = 0.0f;
    if (idx[j * TAPS] < 0) {
        acc = extrapolation;
    } else {
        for (int t = 0; t < TAPS; ++t) {
            const float w = as_float(wbits[j * TAPS + t]);
            acc += w * LOADF(x, base + idx[j * TAPS + t] * inner);
        }
    }
    STOREF(y, (o * len_out + j) * inner + i, acc);
}

// Nearest neighbour as a bit copy (any dtype); idx has one entry per output
// position, -1 for the extrapolation bits.
__kernel void resize_nearest(__global const T *x, __global T *y,
                             __global const int *idx, const int inner,
                             const int len_in, const int len_out, const ulong extrapolation)
{
    const int i = get_global_id(0);
    const int j = get_global_id(1);
    const int o = get_global_id(2);
    const int k = idx[j];
    y[(o * len_out + j) * inner + i] = k < 0 ? (T)extrapolation
                                             : x[(o * len_in + k) * inner + i];
}
