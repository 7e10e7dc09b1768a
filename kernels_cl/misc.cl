// The kernels of ops/misc.py, one per op: causal_conv (CausalConvWithState,
// a causal depthwise 1-D convolution that carries its last k-1 inputs as
// state), swiglu (SwiGLU), linear_attention (LinearAttention), roi_align
// (RoiAlign), deform_conv (DeformConv) and det (Det).
#include "common.h"

#ifndef HAS_BIAS
  #define HAS_BIAS 0        // 1: a per-channel bias is added
#endif
#ifndef HAS_PAST
  #define HAS_PAST 0        // 1: past_state holds the k-1 inputs before this chunk
#endif
#ifndef SILU
  #define SILU 0            // 1: the output goes through x * sigmoid(x)
#endif

// The padded input of one channel row: past_state (or zeros), then the input.
inline float padded_at(__global const STORE_T *x, __global const STORE_T *past,
                       const long row, const int len, const int k, const int p)
{
    const int taps = k - 1;
    if (p >= taps)
        return LOADF(x, row * len + p - taps);
#if HAS_PAST
    return LOADF(past, row * taps + p);
#else
    return 0.0f;
#endif
}

// gsize (len + k - 1, batch * channels): items below len write the output,
// the last k - 1 write present_state.
__kernel void causal_conv(__global const STORE_T *x, __global const STORE_T *w,
                          __global const STORE_T *bias, __global const STORE_T *past,
                          __global STORE_T *y, __global STORE_T *present,
                          const int channels, const int len, const int k)
{
    const int t = get_global_id(0);
    const long row = get_global_id(1);
    const int c = (int)(row % channels);
    const int taps = k - 1;
    if (t >= len) {
        // present_state: the last k - 1 positions of the padded input
        const int j = t - len;
        STOREF(present, row * taps + j, padded_at(x, past, row, len, k, len + j));
        return;
    }
    float acc = HAS_BIAS ? LOADF(bias, c) : 0.0f;
    for (int j = 0; j < k; ++j)
        acc += LOADF(w, (long)c * k + j) * padded_at(x, past, row, len, k, t + j);
#if SILU
    acc = acc / (1.0f + exp(-acc));
#endif
    STOREF(y, row * len + t, acc);
}

__kernel void swiglu(__global const STORE_T *a, __global const STORE_T *b,
                     __global STORE_T *y, const float alpha, const int n)
{
    const int i = get_global_id(0);
    if (i >= n)
        return;
    const float va = LOADF(a, i);
    STOREF(y, i, va / (1.0f + exp(-alpha * va)) * LOADF(b, i));
}

// LinearAttention: the recurrence S_t = g S_{t-1} + k_t (x) v'_t with
// v'_t = v_t (linear, gated) or beta_t (v_t - g S_{t-1}^T k_t) (delta rules),
// o_t = scale q_t^T S_t.  Every update and read of column m of S involves
// only that column, so one work-item per (value column, kv head, batch) runs
// all T steps alone, its column kept in float in `state` (d_k floats).
#ifndef GATED
  #define GATED 0           // 1: S is scaled by exp(decay_t) before each update
#endif
#ifndef DELTA
  #define DELTA 0           // 1: the delta rule (needs beta)
#endif
#ifndef DECAY_PER_KEY
  #define DECAY_PER_KEY 0   // 1: decay is (B, T, H_kv * d_k), else (B, T, H_kv)
#endif
#ifndef BETA_PER_HEAD
  #define BETA_PER_HEAD 1   // 1: beta is (B, T, H_kv), 0: (B, T, 1)
#endif

__kernel void linear_attention(__global const STORE_T *q, __global const STORE_T *k,
                               __global const STORE_T *v, __global const STORE_T *past,
                               __global const STORE_T *decay, __global const STORE_T *beta,
                               __global STORE_T *out, __global STORE_T *present,
                               __global float *state, const int steps, const int heads_q,
                               const int heads_kv, const int dk, const int dv,
                               const float scale)
{
    const int m = get_global_id(0);
    const int h = get_global_id(1);
    const int b = get_global_id(2);
    if (m >= dv)
        return;
    const int group = heads_q / heads_kv;
    const long head = (long)b * heads_kv + h;
    __global float *col = state + head * dk * dv + m;   // S[d][m] at col[d * dv]
    for (int d = 0; d < dk; ++d)
        col[(long)d * dv] = HAS_PAST ? LOADF(past, (head * dk + d) * dv + m) : 0.0f;
    for (int t = 0; t < steps; ++t) {
        const long bt = (long)b * steps + t;
        const long k_row = (bt * heads_kv + h) * dk;
#if GATED
        for (int d = 0; d < dk; ++d) {
            const long g = DECAY_PER_KEY ? k_row + d : bt * heads_kv + h;
            col[(long)d * dv] *= exp(LOADF(decay, g));
        }
#endif
        float update = LOADF(v, (bt * heads_kv + h) * dv + m);
#if DELTA
        float retrieved = 0.0f;
        for (int d = 0; d < dk; ++d)
            retrieved += col[(long)d * dv] * LOADF(k, k_row + d);
        update = LOADF(beta, BETA_PER_HEAD ? bt * heads_kv + h : bt) * (update - retrieved);
#endif
        for (int d = 0; d < dk; ++d)
            col[(long)d * dv] += LOADF(k, k_row + d) * update;
        for (int j = 0; j < group; ++j) {
            const int hq = h * group + j;
            const long q_row = (bt * heads_q + hq) * dk;
            float acc = 0.0f;
            for (int d = 0; d < dk; ++d)
                acc += LOADF(q, q_row + d) * col[(long)d * dv];
            STOREF(out, (bt * heads_q + hq) * dv + m, scale * acc);
        }
    }
    for (int d = 0; d < dk; ++d)
        STOREF(present, (head * dk + d) * dv + m, col[(long)d * dv]);
}

// RoiAlign: output (roi, c, ph, pw) averages (or maxes) a grid of bilinear
// samples inside its bin of the roi.  Samples outside [-1, size] count as 0;
// max mode takes, like the ONNX reference, the largest weighted corner.
#ifndef MAX_MODE
  #define MAX_MODE 0        // 1: max over samples, else their average
#endif
#ifndef HALF_PIXEL
  #define HALF_PIXEL 1      // 1: roi corners shifted by -0.5 (coordinate mode half_pixel)
#endif
#ifndef SAMPLING
  #define SAMPLING 0        // samples per bin side; 0: ceil(roi size / output size)
#endif

__kernel void roi_align(__global const STORE_T *x, __global const STORE_T *rois,
                        __global const long *batch_index, __global STORE_T *y,
                        const int channels, const int height, const int width,
                        const int out_h, const int out_w, const float spatial_scale,
                        const int batches)
{
    const int pw = get_global_id(0);
    const int ph = get_global_id(1);
    const long rc = get_global_id(2);
    if (pw >= out_w || ph >= out_h)
        return;
    const long roi = rc / channels;
    const int c = (int)(rc % channels);
    const float offset = HALF_PIXEL ? 0.5f : 0.0f;
    const float start_w = LOADF(rois, roi * 4) * spatial_scale - offset;
    const float start_h = LOADF(rois, roi * 4 + 1) * spatial_scale - offset;
    float roi_w = LOADF(rois, roi * 4 + 2) * spatial_scale - offset - start_w;
    float roi_h = LOADF(rois, roi * 4 + 3) * spatial_scale - offset - start_h;
    if (!HALF_PIXEL) {
        roi_w = fmax(roi_w, 1.0f);
        roi_h = fmax(roi_h, 1.0f);
    }
    const float bin_h = roi_h / out_h, bin_w = roi_w / out_w;
    const int grid_h = SAMPLING > 0 ? SAMPLING : (int)ceil(roi_h / out_h);
    const int grid_w = SAMPLING > 0 ? SAMPLING : (int)ceil(roi_w / out_w);
    const long image = batch_index[roi];
    if (image < 0 || image >= batches) {   // an invalid index reads nothing
        STOREF(y, rc * out_h * out_w + ph * out_w + pw, NAN);
        return;
    }
    __global const STORE_T *plane = x + (image * channels + c) * height * width;
    float acc = MAX_MODE ? -INFINITY : 0.0f;
    for (int iy = 0; iy < grid_h; ++iy) {
        float sy = start_h + ph * bin_h + (iy + 0.5f) * bin_h / grid_h;
        for (int ix = 0; ix < grid_w; ++ix) {
            float sx = start_w + pw * bin_w + (ix + 0.5f) * bin_w / grid_w;
            float v = 0.0f;
            if (sy >= -1.0f && sy <= height && sx >= -1.0f && sx <= width) {
                float yy = fmax(sy, 0.0f), xx = fmax(sx, 0.0f);
                int y0 = (int)yy, x0 = (int)xx, y1, x1;
                if (y0 >= height - 1) { y0 = y1 = height - 1; yy = y0; } else { y1 = y0 + 1; }
                if (x0 >= width - 1) { x0 = x1 = width - 1; xx = x0; } else { x1 = x0 + 1; }
                const float ly = yy - y0, lx = xx - x0, hy = 1.0f - ly, hx = 1.0f - lx;
                const float a = hy * hx * LOADF(plane, y0 * width + x0);
                const float b = hy * lx * LOADF(plane, y0 * width + x1);
                const float d = ly * hx * LOADF(plane, y1 * width + x0);
                const float e = ly * lx * LOADF(plane, y1 * width + x1);
                v = MAX_MODE ? fmax(fmax(a, b), fmax(d, e)) : a + b + d + e;
            }
            acc = MAX_MODE ? fmax(acc, v) : acc + v;
        }
    }
    if (!MAX_MODE)
        acc /= (float)max(grid_h * grid_w, 1);
    else if (grid_h * grid_w == 0)
        acc = 0.0f;
    STOREF(y, rc * out_h * out_w + ph * out_w + pw, acc);
}

// DeformConv (2-D): each kernel tap of output (oh, ow) reads the input at its
// regular position plus a learned (dy, dx) offset, bilinearly (zero outside
// the image), optionally scaled by a mask.  One work-item per output
// element loops over its group's input channels and the kernel taps.
#ifndef HAS_MASK
  #define HAS_MASK 0        // 1: per-tap modulation mask
#endif

// geometry: in_h, in_w, out_h, out_w, k_h, k_w, stride_h, stride_w,
//           pad_top, pad_left, dil_h, dil_w, in_per_group, out_per_group,
//           in_per_offset_group, channels_in
__kernel void deform_conv(__global const STORE_T *x, __global const STORE_T *w,
                          __global const STORE_T *offset, __global const STORE_T *bias,
                          __global const STORE_T *mask, __global STORE_T *y,
                          const int16 geo, const int out_channels)
{
    const int ow = get_global_id(0);
    const int oh = get_global_id(1);
    const int no = get_global_id(2);
    const int in_h = geo.s0, in_w = geo.s1, out_h = geo.s2, out_w = geo.s3;
    const int k_h = geo.s4, k_w = geo.s5;
    if (ow >= out_w || oh >= out_h)
        return;
    const int n = no / out_channels, oc = no % out_channels;
    const int taps = k_h * k_w;
    const int offset_groups = geo.sf / geo.se;
    const int first_ic = (oc / geo.sd) * geo.sc;
    const long plane = (long)out_h * out_w, pix = (long)oh * out_w + ow;
    float acc = HAS_BIAS ? LOADF(bias, oc) : 0.0f;
    for (int icg = 0; icg < geo.sc; ++icg) {
        const int ic = first_ic + icg;
        const int og = ic / geo.se;
        __global const STORE_T *img = x + ((long)n * geo.sf + ic) * in_h * in_w;
        for (int tap = 0; tap < taps; ++tap) {
            const int kh = tap / k_w, kw = tap % k_w;
            const long o_ch = ((long)n * offset_groups + og) * taps + tap;
            const float py = oh * geo.s6 - geo.s8 + kh * geo.sa + LOADF(offset, (o_ch * 2) * plane + pix);
            const float px = ow * geo.s7 - geo.s9 + kw * geo.sb + LOADF(offset, (o_ch * 2 + 1) * plane + pix);
            const float fy = floor(py), fx = floor(px);
            const int y0 = (int)fy, x0 = (int)fx;
            const float ly = py - fy, lx = px - fx;
            float v = 0.0f;
            for (int dy = 0; dy < 2; ++dy)
                for (int dx = 0; dx < 2; ++dx) {
                    const int yy = y0 + dy, xx = x0 + dx;
                    if (yy >= 0 && yy < in_h && xx >= 0 && xx < in_w)
                        v += (dy ? ly : 1.0f - ly) * (dx ? lx : 1.0f - lx)
                             * LOADF(img, (long)yy * in_w + xx);
                }
#if HAS_MASK
            v *= LOADF(mask, o_ch * plane + pix);
#endif
            acc += v * LOADF(w, ((long)oc * geo.sc + icg) * taps + tap);
        }
    }
    STOREF(y, ((long)n * out_channels + oc) * plane + pix, acc);
}

// Det: one work-item per matrix runs Gaussian elimination with partial
// pivoting on a float copy in `work` (n * n floats per matrix).
__kernel void det(__global const STORE_T *x, __global STORE_T *y, __global float *work,
                  const int n, const int count)
{
    const int m = get_global_id(0);
    if (m >= count)
        return;
    const long nn = (long)n * n;
    __global float *a = work + m * nn;
    for (long i = 0; i < nn; ++i)
        a[i] = LOADF(x, m * nn + i);
    float det = 1.0f;
    for (int col = 0; col < n && det != 0.0f; ++col) {
        int pivot = col;
        for (int r = col + 1; r < n; ++r)
            if (fabs(a[r * n + col]) > fabs(a[pivot * n + col]))
                pivot = r;
        if (pivot != col) {
            for (int c = col; c < n; ++c) {
                const float t = a[col * n + c];
                a[col * n + c] = a[pivot * n + c];
                a[pivot * n + c] = t;
            }
            det = -det;
        }
        const float p = a[col * n + col];
        det *= p;
        if (p == 0.0f)
            break;
        for (int r = col + 1; r < n; ++r) {
            const float f = a[r * n + col] / p;
            for (int c = col + 1; c < n; ++c)
                a[r * n + c] -= f * a[col * n + c];
        }
    }
    STOREF(y, m, det);
}
