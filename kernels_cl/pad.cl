// Pad in every ONNX mode, as a bit copy (T is an unsigned type of the
// element's size).  Each output element maps back to one input element, or
// to the constant; negative pads crop.
#include "common.h"

#ifndef T
  #define T uint            // element bits moved: uchar, ushort, uint or ulong
#endif
#ifndef PAD_MODE
  #define PAD_MODE 0        // 0 constant, 1 reflect, 2 edge, 3 wrap
#endif

// Input coordinate for padded coordinate c of a dim of length n, or -1.
inline int source(int c, const int n)
{
    if (c >= 0 && c < n)
        return c;
#if PAD_MODE == 1
    if (n == 1)
        return 0;
    const int period = 2 * (n - 1);
    c %= period;
    if (c < 0)
        c += period;
    return c < n ? c : period - c;
#elif PAD_MODE == 2
    return clamp(c, 0, n - 1);
#elif PAD_MODE == 3
    c %= n;
    return c < 0 ? c + n : c;
#else
    return -1;
#endif
}

// Negative pads crop first; the modes then work on the cropped input.
// oshape: output dims (rank of them, innermost last); length/first: the
// cropped input's dims and first element per dim; begin: pads before (>= 0);
// istride: the input's element strides.  The constant is value_bits, or
// value[0] with -DVALUE_TENSOR.  A work-item copies a run of up to CHUNK
// elements of one output row (the outer dims' source worked out once per
// run); one element per work-item, with the outer walk per element, ran a
// TCN's causal pads at ~7 ns per element on PoCL.
#ifndef CHUNK
  #define CHUNK 32
#endif
__kernel void pad(__global const T *x, __global T *y, const int rank,
                  const int8 oshape, const int8 length, const int8 first,
                  const int8 begin, const int8 istride, const ulong value_bits,
                  __global const T *value, const int rows)
{
    int od[8], len[8], f[8], b[8], s[8];
    vstore8(oshape, 0, od);
    vstore8(length, 0, len);
    vstore8(first, 0, f);
    vstore8(begin, 0, b);
    vstore8(istride, 0, s);
    const int last = rank - 1;
    const int cols = od[last];
    const int runs = (cols + CHUNK - 1) / CHUNK;
    const int gid = get_global_id(0);
    if (gid >= rows * runs)
        return;
    const int row = gid / runs;
    const int c0 = (gid - row * runs) * CHUNK;
    int rem = row, off = 0;
    bool inside = true;
    for (int d = last - 1; d >= 0; --d) {
        const int src = source(rem % od[d] - b[d], len[d]);
        rem /= od[d];
        inside = inside && src >= 0;
        off += (f[d] + src) * s[d];
    }
#ifdef VALUE_TENSOR
    const T fill = value[0];     // the constant is a tensor computed at run time
#else
    const T fill = (T)value_bits;
#endif
    __global T *out = y + (size_t)row * cols;
    const int end = min(c0 + CHUNK, cols);
    for (int col = c0; col < end; ++col) {
        const int src = source(col - b[last], len[last]);
        out[col] = inside && src >= 0 ? x[off + (f[last] + src) * s[last]] : fill;
    }
}
