// Attention (ONNX opset 23+) in three passes over a float score buffer
// [batch * q_heads][q_len][total_len], and RotaryEmbedding.
//
// Tensors are addressed through (batch, head, position) strides so that 3-D
// ([B, S, heads * D]) and 4-D ([B, heads, S, D]) layouts need no transposes.
// shape (int8): q_heads, kv_heads, q_len, total_len, head_size, v_head_size,
// past_len, mask_len.
#include "common.h"

#ifndef QK_MODE
  #define QK_MODE -1   // which qk_matmul_output to write (-1: none)
#endif

#ifndef MASK_T
  #define MASK_T STORE_T   // additive float mask; bool masks set -DMASK_BOOL
#endif

#ifdef MASK_BOOL
  #define MASK_BIAS(m, i) ((m)[i] ? 0.0f : -INFINITY)
#else
  #define MASK_BIAS(m, i) LOADF(m, i)
#endif

// scores[bh][i][j] = softcap(scale * q . k) + bias; qk gets modes 0-2
// nonpad (with -DHAS_NONPAD): per batch, the number of valid keys (int64)
__kernel void attn_scores(__global const STORE_T *Q, __global const STORE_T *K,
                          __global const MASK_T *mask, __global float *scores,
                          __global STORE_T *qk, const int8 shape, const int4 qs,
                          const int4 ks, const int4 ms, const float scale,
                          const float softcap, const int4 window,
                          __global const long *nonpad)
{
    const int j = get_global_id(0), i = get_global_id(1), bh = get_global_id(2);
    const int hq = shape.s0, q_len = shape.s2, total = shape.s3, D = shape.s4;
    const int b = bh / hq, h = bh % hq;
    const int hk = h / (hq / shape.s1);
    const int qo = b * qs.s0 + h * qs.s1 + i * qs.s2;
    const int ko = b * ks.s0 + hk * ks.s1 + j * ks.s2;
    float acc = 0.0f;
    for (int d = 0; d < D; ++d)
        acc += LOADF(Q, qo + d) * LOADF(K, ko + d);
    float s = acc * scale;
    if (softcap > 0.0f)
        s = softcap * tanh(s / softcap);
    float bias = 0.0f;
#ifdef HAS_MASK
    bias = j < shape.s7 ? MASK_BIAS(mask, b * ms.s0 + h * ms.s1 + i * ms.s2 + j * ms.s3)
                        : -INFINITY;
#endif
#ifdef HAS_NONPAD
    const int valid = (int)nonpad[b];
    if (j >= valid)
        bias = -INFINITY;
    const int diff = i + valid - q_len - j;   // query position - key position
#else
    const int diff = i + shape.s6 - j;
#endif
#ifdef IS_CAUSAL
    if (diff < 0)
        bias = -INFINITY;
#endif
    if ((window.s0 >= 0 && diff > window.s0) || (window.s1 >= 0 && -diff > window.s1))
        bias = -INFINITY;
    const int o = (bh * q_len + i) * total + j;
#if QK_MODE == 2
    STOREF(qk, o, s + bias);
#elif QK_MODE >= 0 && QK_MODE < 2
    STOREF(qk, o, s);
#endif
    // a masked key is -inf whatever its score (inf or NaN scores included)
    scores[o] = bias == -INFINITY ? -INFINITY : s + bias;
}

// in-place row softmax; a row with every key masked becomes all zeros
__kernel void attn_softmax(__global float *scores, __global STORE_T *qk, const int total)
{
    const int row = get_global_id(0);
    __global float *p = scores + (long)row * total;
    float m = -INFINITY;
    for (int j = 0; j < total; ++j)
        m = fmax(m, p[j]);
    if (m == -INFINITY) {
        for (int j = 0; j < total; ++j)
            p[j] = 0.0f;
    } else {
        float sum = 0.0f;
        for (int j = 0; j < total; ++j) {
            const float e = exp(p[j] - m);
            p[j] = e;
            sum += e;
        }
        const float inv = 1.0f / sum;
        for (int j = 0; j < total; ++j)
            p[j] *= inv;
    }
#if QK_MODE == 3
    for (int j = 0; j < total; ++j)
        STOREF(qk, (long)row * total + j, p[j]);
#endif
}

// Y[b, h, i, d] = sum_j P[bh][i][j] * V[b, hk, j, d]
__kernel void attn_pv(__global const float *probs, __global const STORE_T *V,
                      __global STORE_T *Y, const int8 shape, const int4 vs, const int4 ys)
{
    const int d = get_global_id(0), i = get_global_id(1), bh = get_global_id(2);
    const int hq = shape.s0, q_len = shape.s2, total = shape.s3;
    const int b = bh / hq, h = bh % hq;
    const int hk = h / (hq / shape.s1);
    __global const float *p = probs + (long)(bh * q_len + i) * total;
    const int vo = b * vs.s0 + hk * vs.s1 + d;
    float acc = 0.0f;
    for (int j = 0; j < total; ++j)
        acc += p[j] * LOADF(V, vo + j * vs.s2);
    STOREF(Y, b * ys.s0 + h * ys.s1 + i * ys.s2 + d, acc);
}

#ifndef POS_T
  #define POS_T long   // position_ids are int64
#endif

// one output element of [B, S, heads, D] (strides xs: batch, position, head)
// geo: heads, seq, head_size, rotary_dim
__kernel void rotary(__global const STORE_T *X, __global const STORE_T *cos_cache,
                     __global const STORE_T *sin_cache, __global const POS_T *pos,
                     __global STORE_T *out, const int4 geo, const int4 xs)
{
    const int d = get_global_id(0), sh = get_global_id(1), b = get_global_id(2);
    const int heads = geo.s0, S = geo.s1, rot = geo.s3, rot_half = rot / 2;
    const int s = sh / heads, h = sh % heads;
    const int base = b * xs.s0 + s * xs.s1 + h * xs.s2;
    if (d >= rot) {
        STOREF(out, base + d, LOADF(X, base + d));
        return;
    }
#ifdef INTERLEAVED
    const int k = d / 2, second = d & 1;
    const float x1 = LOADF(X, base + 2 * k), x2 = LOADF(X, base + 2 * k + 1);
#else
    const int second = d >= rot_half, k = second ? d - rot_half : d;
    const float x1 = LOADF(X, base + k), x2 = LOADF(X, base + k + rot_half);
#endif
#ifdef HAS_POSITIONS
    const long row = pos[b * S + s];
#else
    const long row = b * S + s;
#endif
    const float c = LOADF(cos_cache, row * rot_half + k);
    const float sn = LOADF(sin_cache, row * rot_half + k);
    STOREF(out, base + d, second ? sn * x1 + c * x2 : c * x1 - sn * x2);
}
