// Index-driven copies: Gather, GatherElements and GatherND.
// Elements are moved as bits (T is an unsigned type of the element's size),
// so one build serves float storage in either mode and integer tensors.
// Indices may be negative (counted from the end).  An index outside its
// dimension is a model error the device cannot report; it is clamped so a
// bad index never reads outside the tensor.
#include "common.h"

#ifndef T
  #define T uint            // element bits moved: uchar, ushort, uint or ulong
#endif
#ifndef IDX_T
  #define IDX_T long        // index type: long (int64) or int (int32)
#endif

inline int fix_index(const IDX_T idx, const int dim)
{
    long i = (long)idx;
    if (i < 0)
        i += dim;
    return (int)clamp(i, 0L, (long)(dim - 1));
}

// out[o][j][i] = data[o][indices[j]][i]: gid0 = i (inner), gid1 = j, gid2 = o
__kernel void gather(__global const T *data, __global const IDX_T *indices,
                     __global T *out, const int inner, const int axis_dim,
                     const int n_idx)
{
    const int i = get_global_id(0);
    const int j = get_global_id(1);
    const int o = get_global_id(2);
    const int k = fix_index(indices[j], axis_dim);
    out[(o * n_idx + j) * inner + i] = data[(o * axis_dim + k) * inner + i];
}

// out[c] = data[c with c[axis] = indices[c]]; c runs over indices' shape.
// shape: indices' dims (rank of them used, innermost last); dstride: data's
// element strides for the same dims.
__kernel void gather_elements(__global const T *data, __global const IDX_T *indices,
                              __global T *out, const int rank, const int axis,
                              const int axis_dim, const int8 shape, const int8 dstride)
{
    const int i = get_global_id(0);
    int dims[8], strides[8];
    vstore8(shape, 0, dims);
    vstore8(dstride, 0, strides);
    int rem = i, off = 0;
    for (int d = rank - 1; d >= 0; --d) {
        const int coord = rem % dims[d];
        rem /= dims[d];
        off += (d == axis ? fix_index(indices[i], axis_dim) : coord) * strides[d];
    }
    out[i] = data[off];
}

// out[g][i] = data[batch(g)][indices[g][0..K)][i]: gid0 = i (within a
// slice), gid1 = g (index tuple).  dims/dstride: the K indexed data dims.
__kernel void gather_nd(__global const T *data, __global const IDX_T *indices,
                        __global T *out, const int slice, const int K,
                        const int per_batch, const int batch_stride,
                        const int8 dims, const int8 dstride)
{
    const int i = get_global_id(0);
    const int g = get_global_id(1);
    int d[8], s[8];
    vstore8(dims, 0, d);
    vstore8(dstride, 0, s);
    int off = (g / per_batch) * batch_stride;
    for (int k = 0; k < K; ++k)
        off += fix_index(indices[g * K + k], d[k]) * s[k];
    out[g * slice + i] = data[off + i];
}

// ReverseSequence: along the time axis, the first lens[b] steps of batch b
// are reversed and the rest copied.  t_stride/b_stride: element strides of
// the time and batch axes; steps/batches: their lengths.
__kernel void reverse_sequence(__global const T *x, __global const IDX_T *lens,
                               __global T *out, const int t_stride, const int steps,
                               const int b_stride, const int batches)
{
    const int i = get_global_id(0);
    const int t = (i / t_stride) % steps;
    const int b = (i / b_stride) % batches;
    const int len = (int)clamp((long)lens[b], 0L, (long)steps);
    const int src = t < len ? len - 1 - t : t;
    out[i] = x[i + (src - t) * t_stride];
}
