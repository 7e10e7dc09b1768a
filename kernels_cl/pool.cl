// 2-D max/average pooling (-DPOOL_MAX or -DPOOL_AVG) and global pooling.
#include "common.h"

#if !defined(POOL_MAX) && !defined(POOL_AVG)
  #define POOL_MAX
#endif

// kern = (kh, kw, sy, sx); pads = (top, left, bottom, right); dil = (dy, dx)
__kernel void pool2d(__global const STORE_T *x, __global STORE_T *y,
                     const int H, const int W, const int OH, const int OW,
                     const int4 kern, const int4 pads, const int2 dil,
                     const int count_include_pad)
{
    const int ox = get_global_id(0);
    const int oy = get_global_id(1);
    const int nc = get_global_id(2);
    if (ox >= OW || oy >= OH)
        return;
    const int y0 = oy * kern.s2 - pads.s0;
    const int x0 = ox * kern.s3 - pads.s1;
    __global const STORE_T *xp = x;
    const int base = nc * H * W;
#ifdef POOL_MAX
    float acc = -INFINITY;
#else
    float acc = 0.0f;
    int inside = 0, padded = 0;
#endif
    for (int ky = 0; ky < kern.s0; ++ky) {
        const int iy = y0 + ky * dil.s0;
        for (int kx = 0; kx < kern.s1; ++kx) {
            const int ix = x0 + kx * dil.s1;
            const bool in = iy >= 0 && iy < H && ix >= 0 && ix < W;
#ifdef POOL_MAX
            if (in)
                acc = fmax(acc, LOADF(xp, base + iy * W + ix));
#else
            if (in) {
                acc += LOADF(xp, base + iy * W + ix);
                ++inside;
            }
            if (iy < H + pads.s2 && ix < W + pads.s3)
                ++padded;
#endif
        }
    }
#ifdef POOL_AVG
    acc /= (float)(count_include_pad ? padded : max(inside, 1));
#endif
    STOREF(y, (nc * OH + oy) * OW + ox, acc);
}

// Reduce each row of length L (one work-item per row).
__kernel void global_pool(__global const STORE_T *x, __global STORE_T *y,
                          const int rows, const int L)
{
    const int r = get_global_id(0);
    if (r >= rows)
        return;
    const int base = r * L;
#ifdef POOL_MAX
    float acc = -INFINITY;
    for (int i = 0; i < L; ++i)
        acc = fmax(acc, LOADF(x, base + i));
#else
    float acc = 0.0f;
    for (int i = 0; i < L; ++i)
        acc += LOADF(x, base + i);
    acc /= (float)L;
#endif
    STOREF(y, r, acc);
}
