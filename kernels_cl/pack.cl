// Packing kernels that feed gemm.cl: they write the column-panel layout
// out[z][N/TN][K][TN] (zero beyond N) that the GEMM's inner loop streams.
#include "common.h"

#ifndef TN
  #define TN 16             // panel width; must match the GEMM's TN
#endif

// N (a constant: the loop must unroll for the driver to vectorise it)
// values of one im2col row (tap ky, kx) into v, from output pixel (oy0, ox0)
// on, wrapping to the next output row; zero outside the image.
#define IM2COL_GATHER(v, N, oy0, ox0) \
    do { \
        int oy_ = (oy0), ox_ = (ox0); \
        _Pragma("unroll") \
        for (int t_ = 0; t_ < (N); ++t_) { \
            const int iy_ = oy_ * kern.s2 - pad_dil.s0 + ky * pad_dil.s2; \
            const int ix_ = ox_ * kern.s3 - pad_dil.s1 + kx * pad_dil.s3; \
            const bool in_ = oy_ < OH && iy_ >= 0 && iy_ < H && ix_ >= 0 && ix_ < W; \
            (v)[t_] = in_ ? LOADF(plane, iy_ * W + ix_) : 0.0f; \
            if (++ox_ == OW) { \
                ox_ = 0; \
                ++oy_; \
            } \
        } \
    } while (0)

// im2col for 2-D convolution, straight into panels.  z = image * G + group,
// k = (channel in group, ky, kx), column = output pixel oy * OW + ox.
// One work-item fills one panel row: TN consecutive output pixels of one k,
// so its reads run along an image row and its writes are contiguous.
__kernel void im2col(__global const STORE_T *x, __global STORE_T *out,
                     const int x_off, const int c_group, const int H, const int W,
                     const int OH, const int OW, const int K, const int n_panels,
                     const int4 kern, const int4 pad_dil)
{
    const int panel = get_global_id(0);
    const int k = get_global_id(1);
    const int z = get_global_id(2);
    const int kh = kern.s0, kw = kern.s1;
    const int kx = k % kw;
    const int ky = (k / kw) % kh;
    const int c = k / (kw * kh);
    __global const STORE_T *plane = x + x_off + (z * c_group + c) * H * W;
    const int col0 = panel * TN;
    __global STORE_T *dst = out + ((z * n_panels + panel) * K + k) * TN;
#if TN % 8 == 0
    // Eight output pixels at a time: a chunk in one output row with every tap
    // inside the image (stride 1 or 2; a stride-2 chunk loads 16 inputs) is
    // one vector load instead of eight gathers.  Deciding per chunk rather
    // than per TN-wide strip keeps strips that cross an output row (most of
    // them when OW is not a multiple of TN: 28, 56, 112) and the chunks away
    // from the padded border on the vector path.
    #pragma unroll
    for (int j = 0; j < TN; j += 8) {
        const int oy = (col0 + j) / OW, ox = (col0 + j) % OW;
        const int iy = oy * kern.s2 - pad_dil.s0 + ky * pad_dil.s2;
        const int ix = ox * kern.s3 - pad_dil.s1 + kx * pad_dil.s3;
        float8 row;
        if (ox + 8 <= OW && oy < OH && iy >= 0 && iy < H && ix >= 0
                && ix + 8 * kern.s3 <= W && kern.s3 <= 2) {
            __global const STORE_T *src = plane + iy * W + ix;
            if (kern.s3 == 1) {
                row = LOADFN(8, src, 0);
            } else {
                const float8 lo = LOADFN(8, src, 0), hi = LOADFN(8, src, 8);
                row = (float8)(lo.even, hi.even);
            }
        } else {
            float v[8];
            IM2COL_GATHER(v, 8, oy, ox);
            row = vload8(0, v);
        }
        STOREFN(8, dst, j, row);
    }
#else
    float v[TN];
    IM2COL_GATHER(v, TN, col0 / OW, col0 % OW);
    #pragma unroll
    for (int j = 0; j < TN; j += 4)
        STOREFN(4, dst, j, vload4(0, v + j));
#endif
}

// A strided matrix src[z][k][n] = src[base + z*sz + k*sk + n*sn] into panels;
// one work-item per panel row (TN columns of one k).
__kernel void pack_b(__global const STORE_T *src, __global STORE_T *out,
                     const int K, const int N, const int n_panels, const int4 strides)
{
    const int panel = get_global_id(0);
    const int k = get_global_id(1);
    const int z = get_global_id(2);
    __global const STORE_T *row = src + strides.s3 + z * strides.s0 + k * strides.s1;
    const int col0 = panel * TN;
    float v[TN];
    #pragma unroll
    for (int j = 0; j < TN; ++j)
        v[j] = col0 + j < N ? LOADF(row, (col0 + j) * strides.s2) : 0.0f;
    __global STORE_T *dst = out + ((z * n_panels + panel) * K + k) * TN;
    #pragma unroll
    for (int j = 0; j < TN; j += 4)
        STOREFN(4, dst, j, vload4(0, v + j));
}
