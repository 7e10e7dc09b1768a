// Direct depthwise 2-D convolution (groups == input channels), with fused
// bias and activation.  Each work-item computes WX consecutive output pixels
// of one row of one channel, reusing each weight WX times.
#include "common.h"

#ifndef WX
  #define WX 4              // output pixels per work-item along x
#endif
#ifndef ACT
  #define ACT ACT_NONE
#endif

__kernel void depthwise(__global const STORE_T *x, __global const STORE_T *w,
                        __global const STORE_T *bias, __global STORE_T *y,
                        const int C, const int H, const int W, const int M,
                        const int OH, const int OW,
                        const int4 kern, const int4 pad_dil)
{
    const int ox0 = get_global_id(0) * WX;
    const int oy = get_global_id(1);
    const int nm = get_global_id(2);          // image * M + output channel
    if (ox0 >= OW || oy >= OH)
        return;
    const int n = nm / M, m = nm % M;
    const int c = m / (M / C);
    const int kh = kern.s0, kw = kern.s1, sy = kern.s2, sx = kern.s3;
    __global const STORE_T *xc = x;
    const int x_base = (n * C + c) * H * W;
    float acc[WX];
    for (int j = 0; j < WX; ++j)
        acc[j] = 0.0f;
    for (int ky = 0; ky < kh; ++ky) {
        const int iy = oy * sy - pad_dil.s0 + ky * pad_dil.s2;
        if (iy < 0 || iy >= H)
            continue;
        for (int kx = 0; kx < kw; ++kx) {
            const float wv = LOADF(w, (m * kh + ky) * kw + kx);
            for (int j = 0; j < WX; ++j) {
                const int ix = (ox0 + j) * sx - pad_dil.s1 + kx * pad_dil.s3;
                if (ix >= 0 && ix < W)
                    acc[j] += wv * LOADF(xc, x_base + iy * W + ix);
            }
        }
    }
#ifdef HAS_BIAS
    const float b = LOADF(bias, m);
#else
    const float b = 0.0f;
#endif
    const int y_base = (nm * OH + oy) * OW;
    for (int j = 0; j < WX && ox0 + j < OW; ++j)
        STOREF(y, y_base + ox0 + j, ACT(acc[j] + b));
}
