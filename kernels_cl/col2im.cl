// The scatter half of ConvTranspose (transposed convolution as GEMM +
// col2im).  The GEMM has produced, per image n and group g,
//   cols[n][g][(m, kd, kh, kw)][(id, ih, iw)] = sum_c W[c][m][k] * x[n][c][i]
// and each output element here gathers every (kernel tap, input pixel) pair
// that lands on it, so no two work-items write the same element.  1-D and
// 2-D transposed convolutions are the 3-D case with unit leading dims.
#include "common.h"

// sizes/steps are (D, H, W, unused) int4s: in = input spatial dims, out =
// output spatial dims, kern = kernel dims, stride, pad = padding before, dil.
// gid0 = ow, gid1 = oh, gid2 = (n * M + m) * OD + od.
__kernel void col2im(__global const STORE_T *cols, __global const STORE_T *bias,
                     __global STORE_T *y, const int4 in, const int4 out,
                     const int4 kern, const int4 stride, const int4 pad,
                     const int4 dil, const int M, const int group)
{
    const int ow = get_global_id(0);
    const int oh = get_global_id(1);
    const int z = get_global_id(2);
    const int od = z % out.s0;
    const int nm = z / out.s0;
    const int m = nm % M;
    const int n = nm / M;
    const int mg_count = M / group;
    const int g = m / mg_count;
    const int taps = kern.s0 * kern.s1 * kern.s2;
    const int plane = in.s0 * in.s1 * in.s2;
    const int base = ((n * group + g) * mg_count + m % mg_count) * taps * plane;
#ifdef HAS_BIAS
    float acc = LOADF(bias, m);
#else
    float acc = 0.0f;
#endif
    for (int kd = 0; kd < kern.s0; ++kd) {
        const int td = od + pad.s0 - kd * dil.s0;
        if (td < 0 || td % stride.s0 || td / stride.s0 >= in.s0)
            continue;
        for (int kh = 0; kh < kern.s1; ++kh) {
            const int th = oh + pad.s1 - kh * dil.s1;
            if (th < 0 || th % stride.s1 || th / stride.s1 >= in.s1)
                continue;
            for (int kw = 0; kw < kern.s2; ++kw) {
                const int tw = ow + pad.s2 - kw * dil.s2;
                if (tw < 0 || tw % stride.s2 || tw / stride.s2 >= in.s2)
                    continue;
                const int tap = (kd * kern.s1 + kh) * kern.s2 + kw;
                const int pixel = ((td / stride.s0) * in.s1 + th / stride.s1) * in.s2
                                  + tw / stride.s2;
                acc += LOADF(cols, base + tap * plane + pixel);
            }
        }
    }
    STOREF(y, ((n * M + m) * out.s0 + od) * out.s1 * out.s2 + oh * out.s2 + ow, acc);
}
