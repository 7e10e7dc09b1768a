// GridSample: out[n][c][p] = X[n][c] sampled at grid[n][p], the grid's
// (x, y[, z]) in [-1, 1] across the input's (W, H[, D]).  One work-item per
// output position computes its source coordinate and taps once and loops
// over the channels.  2-D inputs are the 3-D case with D = 1.
#include "common.h"

#ifndef MODE
  #define MODE 1            // 0 nearest, 1 (bi/tri)linear, 2 bicubic
#endif
#ifndef PADDING
  #define PADDING 0         // 0 zeros, 1 border, 2 reflection
#endif
#ifndef ALIGN_CORNERS
  #define ALIGN_CORNERS 0   // 1: -1 and 1 are the centres of the corner pixels
#endif
#define CUBIC_A (-0.75f)

inline float unnormalize(const float g, const int size)
{
#if ALIGN_CORNERS
    return (g + 1.0f) * 0.5f * (size - 1);
#else
    return ((g + 1.0f) * size - 1.0f) * 0.5f;
#endif
}

// Reflect x into [lo, hi] = [low2 / 2, high2 / 2], folding as often as needed.
inline float reflect(float x, const float low2, const float high2)
{
    if (low2 == high2)
        return 0.0f;
    const float lo = low2 * 0.5f, span = (high2 - low2) * 0.5f;
    x = fabs(x - lo);
    const float extra = fmod(x, span);
    const int flips = (int)floor(x / span);
    return (flips % 2 == 0) ? extra + lo : span - extra + lo;
}

// The padding mode applied to a coordinate of a dim of length size.
inline float pad_coord(float x, const int size)
{
#if PADDING == 1
    x = clamp(x, 0.0f, (float)(size - 1));
#elif PADDING == 2
  #if ALIGN_CORNERS
    x = reflect(x, 0.0f, 2.0f * (size - 1));
  #else
    x = reflect(x, -1.0f, 2.0f * size - 1.0f);
  #endif
    x = clamp(x, 0.0f, (float)(size - 1));
#endif
    return x;
}

inline float tap(__global const STORE_T *x, const int plane, const int4 in,
                 const int iz, const int iy, const int ix)
{
    if (iz < 0 || iz >= in.s0 || iy < 0 || iy >= in.s1 || ix < 0 || ix >= in.s2)
        return 0.0f;
    return LOADF(x, plane + (iz * in.s1 + iy) * in.s2 + ix);
}

inline void cubic_weights(const float t, float *w)
{
    const float a = CUBIC_A;
    w[0] = ((a * (t + 1.0f) - 5.0f * a) * (t + 1.0f) + 8.0f * a) * (t + 1.0f) - 4.0f * a;
    w[1] = ((a + 2.0f) * t - (a + 3.0f)) * t * t + 1.0f;
    w[2] = ((a + 2.0f) * (1.0f - t) - (a + 3.0f)) * (1.0f - t) * (1.0f - t) + 1.0f;
    w[3] = ((a * (2.0f - t) - 5.0f * a) * (2.0f - t) + 8.0f * a) * (2.0f - t) - 4.0f * a;
}

// in/out: (D, H, W, C) of the input and output; gid0 = ow, gid1 = od * OH
// + oh, gid2 = n.  The grid holds `comps` (2 or 3) floats per position.
__kernel void grid_sample(__global const STORE_T *x, __global const STORE_T *grid,
                          __global STORE_T *y, const int4 in, const int4 out,
                          const int comps)
{
    const int ow = get_global_id(0);
    const int ohd = get_global_id(1);
    const int n = get_global_id(2);
    const int positions = out.s0 * out.s1 * out.s2;
    const int p = ohd * out.s2 + ow;
    const int g = (n * positions + p) * comps;
    float fx = unnormalize(LOADF(grid, g), in.s2);
    float fy = unnormalize(LOADF(grid, g + 1), in.s1);
    float fz = comps > 2 ? unnormalize(LOADF(grid, g + 2), in.s0) : 0.0f;
    const int channels = in.s3;
    const int plane_size = in.s0 * in.s1 * in.s2;
#if MODE == 2
    // bicubic (2-D only): padding applies to each tap's index
    const float x0 = floor(fx), y0 = floor(fy);
    float wx[4], wy[4];
    cubic_weights(fx - x0, wx);
    cubic_weights(fy - y0, wy);
    int ix[4], iy[4];
    for (int k = 0; k < 4; ++k) {
  #if PADDING == 0
        ix[k] = (int)x0 - 1 + k;
        iy[k] = (int)y0 - 1 + k;
  #else
        ix[k] = (int)pad_coord((float)((int)x0 - 1 + k), in.s2);
        iy[k] = (int)pad_coord((float)((int)y0 - 1 + k), in.s1);
  #endif
    }
    for (int c = 0; c < channels; ++c) {
        const int plane = (n * channels + c) * plane_size;
        float acc = 0.0f;
        for (int j = 0; j < 4; ++j)
            for (int k = 0; k < 4; ++k)
                acc += wy[j] * wx[k] * tap(x, plane, in, 0, iy[j], ix[k]);
        STOREF(y, (n * channels + c) * positions + p, acc);
    }
#else
    fx = pad_coord(fx, in.s2);
    fy = pad_coord(fy, in.s1);
    if (comps > 2)
        fz = pad_coord(fz, in.s0);
  #if MODE == 0
    const int ix = (int)rint(fx), iy = (int)rint(fy), iz = (int)rint(fz);
    for (int c = 0; c < channels; ++c) {
        const int plane = (n * channels + c) * plane_size;
        STOREF(y, (n * channels + c) * positions + p, tap(x, plane, in, iz, iy, ix));
    }
  #else
    const float x0 = floor(fx), y0 = floor(fy), z0 = floor(fz);
    const float tx = fx - x0, ty = fy - y0, tz = fz - z0;
    const int ix = (int)x0, iy = (int)y0, iz = (int)z0;
    const int depth_taps = comps > 2 ? 2 : 1;
    for (int c = 0; c < channels; ++c) {
        const int plane = (n * channels + c) * plane_size;
        float acc = 0.0f;
        for (int dz = 0; dz < depth_taps; ++dz) {
            const float wz = depth_taps == 1 ? 1.0f : (dz ? tz : 1.0f - tz);
            for (int dy = 0; dy < 2; ++dy) {
                const float wy = dy ? ty : 1.0f - ty;
                for (int dx = 0; dx < 2; ++dx) {
                    const float wx = dx ? tx : 1.0f - tx;
                    acc += wz * wy * wx * tap(x, plane, in, iz + dz, iy + dy, ix + dx);
                }
            }
        }
        STOREF(y, (n * channels + c) * positions + p, acc);
    }
  #endif
#endif
}

// AffineGrid: grid[n][p] = theta[n] @ (x, y[, z], 1) at the normalised
// coordinates of output position p; out = (D, H, W, dims) with dims 2 or 3.
// gid0 = w, gid1 = d * H + h, gid2 = n.
inline float base_coord(const int i, const int size)
{
#if ALIGN_CORNERS
    return size > 1 ? -1.0f + 2.0f * i / (size - 1) : 0.0f;
#else
    return (2.0f * i + 1.0f) / size - 1.0f;
#endif
}

__kernel void affine_grid(__global const STORE_T *theta, __global STORE_T *grid,
                          const int4 out)
{
    const int w = get_global_id(0);
    const int dh = get_global_id(1);
    const int n = get_global_id(2);
    const int dims = out.s3;
    const int h = dh % out.s1, d = dh / out.s1;
    const float src[4] = {base_coord(w, out.s2), base_coord(h, out.s1),
                          dims > 2 ? base_coord(d, out.s0) : 1.0f, 1.0f};
    const int p = (d * out.s1 + h) * out.s2 + w;
    for (int r = 0; r < dims; ++r) {
        float acc = 0.0f;
        for (int k = 0; k <= dims; ++k)
            acc += LOADF(theta, (n * dims + r) * (dims + 1) + k) * src[k];
        STOREF(grid, (n * out.s0 * out.s1 * out.s2 + p) * dims + r, acc);
    }
}
