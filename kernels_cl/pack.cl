// Packing kernels that feed gemm.cl: they write the column-panel layout
// out[z][N/TN][K][TN] (zero beyond N) that the GEMM's inner loop streams.
#include "common.h"

#ifndef TN
  #define TN 16             // panel width; must match the GEMM's TN
#endif

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
        int oy = (col0 + j) / OW, ox = (col0 + j) % OW;
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
            #pragma unroll
            for (int t = 0; t < 8; ++t) {
                const int y = oy * kern.s2 - pad_dil.s0 + ky * pad_dil.s2;
                const int xx = ox * kern.s3 - pad_dil.s1 + kx * pad_dil.s3;
                const bool inside = oy < OH && y >= 0 && y < H && xx >= 0 && xx < W;
                v[t] = inside ? LOADF(plane, y * W + xx) : 0.0f;
                if (++ox == OW) {
                    ox = 0;
                    ++oy;
                }
            }
            row = vload8(0, v);
        }
        STOREFN(8, dst, j, row);
    }
#else
    int oy = col0 / OW, ox = col0 % OW;
    float v[TN];
    #pragma unroll
    for (int j = 0; j < TN; ++j) {
        const int iy = oy * kern.s2 - pad_dil.s0 + ky * pad_dil.s2;
        const int ix = ox * kern.s3 - pad_dil.s1 + kx * pad_dil.s3;
        const bool inside = oy < OH && iy >= 0 && iy < H && ix >= 0 && ix < W;
        v[j] = inside ? LOADF(plane, iy * W + ix) : 0.0f;
        if (++ox == OW) {
            ox = 0;
            ++oy;
        }
    }
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
