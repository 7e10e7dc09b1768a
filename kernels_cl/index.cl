// Ops whose output depends on element coordinates: Trilu and OneHot.
// Elements are moved as bits (T: an unsigned type of the element's size).
#include "common.h"

#ifndef T
  #define T uint            // element bits moved: uchar, ushort, uint or ulong
#endif
#ifdef IDX_FLOAT
  #define IDX_T STORE_T     // float indices are stored like every float tensor
#endif
#ifndef IDX_T
  #define IDX_T long        // OneHot's index type (integer C type)
#endif

// Keep the upper (-DUPPER) or lower triangle of each rows x cols matrix
// relative to diagonal k; the rest becomes 0 (all-zero bits in every type).
__kernel void trilu(__global const T *x, __global T *y, const int rows,
                    const int cols, const long k)
{
    const int i = get_global_id(0);
    const long c = i % cols;
    const long r = (i / cols) % rows;
#ifdef UPPER
    const bool keep = c - r >= k;
#else
    const bool keep = c - r <= k;
#endif
    y[i] = keep ? x[i] : (T)0;
}

// out[o][d][j] = d == indices[o][j] (negative counts from depth) ? on : off,
// with values = (off, on); gid0 = j, gid1 = d, gid2 = o.
__kernel void one_hot(__global const IDX_T *indices, __global const T *values,
                      __global T *out, const int inner, const int depth)
{
    const int j = get_global_id(0);
    const int d = get_global_id(1);
    const int o = get_global_id(2);
#ifdef IDX_FLOAT
    long idx = (long)LOADF(indices, o * inner + j);
#else
    long idx = (long)indices[o * inner + j];
#endif
    if (idx < 0)
        idx += depth;
    out[(o * depth + d) * inner + j] = values[idx == d ? 1 : 0];
}
