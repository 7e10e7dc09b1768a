// ScatterElements, ScatterND (reduction none/add/mul/max/min) and fill.
// The output already holds a copy of the data; these kernels write the
// updates into it.  Float tensors go through the storage macros (arithmetic
// in float); -DRAW -DT=long makes them plain arrays of T (integer tensors,
// and bit copies when there is no reduction).  Updates that may hit the same
// element are applied by one work-item in order, so reductions are exact
// and deterministic without atomics.
#include "common.h"

#ifndef IDX_T
  #define IDX_T long        // index type: long (int64) or int (int32)
#endif
#ifndef REDUCE_OP
  #define REDUCE_OP R_NONE  // how an update combines with the old value
#endif
#define REDUCE(old, u) REDUCE_OP(old, u)

#ifdef RAW
  #ifndef T
    #define T uint          // element type for RAW tensors
  #endif
  #define ET T
  #define CT T
  #define LD(p, i) ((p)[i])
  #define ST(p, i, v) ((p)[i] = (v))
#else
  #define ET STORE_T
  #define CT float
  #define LD(p, i) LOADF(p, i)
  #define ST(p, i, v) STOREF(p, i, v)
#endif

#define R_NONE(a, b) (b)
#define R_ADD(a, b) ((a) + (b))
#define R_MUL(a, b) ((a) * (b))
#define R_MAX(a, b) ((a) > (b) ? (a) : (b))
#define R_MIN(a, b) ((a) < (b) ? (a) : (b))

inline int fix_index(const IDX_T idx, const int dim)
{
    long i = (long)idx;
    if (i < 0)
        i += dim;
    return (int)clamp(i, 0L, (long)(dim - 1));
}

inline void apply(__global ET *out, const int o, const CT u)
{
    const CT old = LD(out, o);
    ST(out, o, REDUCE(old, u));
}

// One work-item per line of updates along the axis.  shape: the other dims
// of updates (rank of them, innermost last); ustride/ostride: their strides
// in updates (= indices) and in out.
__kernel void scatter_elements(__global ET *out, __global const IDX_T *indices,
                               __global const ET *updates, const int rank,
                               const int8 shape, const int8 ustride, const int8 ostride,
                               const int len, const int u_axis_stride,
                               const int o_axis_stride, const int axis_dim)
{
    const int line = get_global_id(0);
    int dims[8], us[8], os[8];
    vstore8(shape, 0, dims);
    vstore8(ustride, 0, us);
    vstore8(ostride, 0, os);
    int rem = line, u_off = 0, o_off = 0;
    for (int d = rank - 1; d >= 0; --d) {
        const int coord = rem % dims[d];
        rem /= dims[d];
        u_off += coord * us[d];
        o_off += coord * os[d];
    }
    for (int j = 0; j < len; ++j) {
        const int u = u_off + j * u_axis_stride;
        apply(out, o_off + fix_index(indices[u], axis_dim) * o_axis_stride, LD(updates, u));
    }
}

// gid0 = i (element within a slice).  Without a reduction indices are
// unique (ONNX requires it) and gid1 = g runs the tuples in parallel; with
// one, each work-item walks all n_tuples in order.
__kernel void scatter_nd(__global ET *out, __global const IDX_T *indices,
                         __global const ET *updates, const int slice, const int K,
                         const int n_tuples, const int8 dims, const int8 dstride)
{
    const int i = get_global_id(0);
    int d[8], s[8];
    vstore8(dims, 0, d);
    vstore8(dstride, 0, s);
#ifdef SERIAL
    for (int g = 0; g < n_tuples; ++g) {
#else
    {
        const int g = get_global_id(1);
#endif
        int off = 0;
        for (int k = 0; k < K; ++k)
            off += fix_index(indices[g * K + k], d[k]) * s[k];
        apply(out, off + i, LD(updates, g * slice + i));
    }
}

// MaxUnpool: updates[i] goes to flat index indices[i] of a tensor whose
// spatial dims are `from` (D, H, W), placed at the same coordinates of `out`
// whose spatial dims are `to` (an explicit output_shape may differ).
__kernel void scatter_flat(__global ET *out, __global const IDX_T *indices,
                           __global const ET *updates, const int4 from, const int4 to,
                           const int planes)
{
    const int i = get_global_id(0);
    const long idx = (long)indices[i];
    const long from_plane = (long)from.s0 * from.s1 * from.s2;
    const long nc = idx / from_plane;
    long rem = idx % from_plane;
    const int w = rem % from.s2;
    rem /= from.s2;
    const int h = rem % from.s1;
    const int d = rem / from.s1;
    if (idx < 0 || nc >= planes || d >= to.s0 || h >= to.s1 || w >= to.s2)
        return;
    ST(out, (int)(((nc * to.s0 + d) * to.s1 + h) * to.s2 + w), LD(updates, i));
}

// TensorScatter (KV-cache update): update[o][s][i] goes to out[o][w + s][i]
// with w = write_indices[batch of o] (0 without -DHAS_WRITE_INDICES), modulo
// the cache length with -DCIRCULAR.  gid0 = i, gid1 = s, gid2 = o; o runs
// over the dims before the axis, the first of which is the batch.
__kernel void tensor_scatter(__global ET *out, __global const IDX_T *write_indices,
                             __global const ET *updates, const int inner, const int steps,
                             const int cache_len, const int per_batch)
{
    const int i = get_global_id(0);
    const int s = get_global_id(1);
    const int o = get_global_id(2);
#ifdef HAS_WRITE_INDICES
    long t = (long)write_indices[o / per_batch] + s;
#else
    long t = s;
#endif
#ifdef CIRCULAR
    t %= cache_len;
    if (t < 0)
        t += cache_len;
#endif
    if (t < 0 || t >= cache_len)
        return;
    ST(out, (o * cache_len + (int)t) * inner + i, LD(updates, (o * steps + s) * inner + i));
}

#ifdef RAW
// Every element of a RAW tensor of T set to the same bits.
__kernel void fill(__global T *out, const ulong bits)
{
    out[get_global_id(0)] = (T)bits;
}
#endif
