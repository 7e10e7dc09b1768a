// Packing kernels that feed gemm.cl: they write the column-panel layout
// out[z][N/TN][K][TN] (zero beyond N) that the GEMM's inner loop streams.
#include "common.h"

#ifndef TN
  #define TN 16             // panel width; must match the GEMM's TN
#endif

// im2col for 2-D convolution, straight into panels.  z = image * G + group,
// k = (channel in group, ky, kx), column = output pixel oy * OW + ox.
__kernel void im2col(__global const STORE_T *x, __global STORE_T *out,
                     const int x_off, const int c_group, const int H, const int W,
                     const int OH, const int OW, const int K, const int n_panels,
                     const int4 kern, const int4 pad_dil)
{
    const int col = get_global_id(0);
    const int k = get_global_id(1);
    const int z = get_global_id(2);
    const int kh = kern.s0, kw = kern.s1;
    const int kx = k % kw;
    const int ky = (k / kw) % kh;
    const int c = k / (kw * kh);
    float v = 0.0f;
    if (col < OH * OW) {
        const int oy = col / OW, ox = col % OW;
        const int iy = oy * kern.s2 - pad_dil.s0 + ky * pad_dil.s2;
        const int ix = ox * kern.s3 - pad_dil.s1 + kx * pad_dil.s3;
        if (iy >= 0 && iy < H && ix >= 0 && ix < W)
            v = LOADF(x, x_off + (z * c_group + c) * H * W + iy * W + ix);
    }
    STOREF(out, ((z * n_panels + col / TN) * K + k) * TN + col % TN, v);
}

// A strided matrix src[z][k][n] = src[base + z*sz + k*sk + n*sn] into panels.
__kernel void pack_b(__global const STORE_T *src, __global STORE_T *out,
                     const int K, const int N, const int n_panels, const int4 strides)
{
    const int col = get_global_id(0);
    const int k = get_global_id(1);
    const int z = get_global_id(2);
    float v = 0.0f;
    if (col < N)
        v = LOADF(src, strides.s3 + z * strides.s0 + k * strides.s1 + col * strides.s2);
    STOREF(out, ((z * n_panels + col / TN) * K + k) * TN + col % TN, v);
}
