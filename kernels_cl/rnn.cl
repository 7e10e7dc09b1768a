// Recurrent cells (RNN, GRU, LSTM): one launch per time step and direction.
//
// The input projection X*W^T of every time step is one GEMM before the
// loop (xw); a step kernel then does, for one (hidden unit j, batch b), the
// recurrent dot products h_prev . R[g*H + j] of its gates, adds biases,
// applies the activations and updates the state.  States are kept in float
// (ping-pong buffers [dirs][batch][H]) whatever the storage type, so a long
// sequence does not round the cell state to half at every step.
//
// geo (int8): H, t, xw_base, xw_bstride, r_base, b_base, p_base, st_base
// yo (int4):  y_base, y_bstride, -, -
#include "common.h"

#ifndef RNN_VEC
  #define RNN_VEC 4   // width of the vector loads of the recurrent dot products
#endif

// activation kinds, in clnet.ops.rnn.ACTIVATIONS order
float rnn_act(int kind, float x, float alpha, float beta)
{
    switch (kind) {
    case 0: return fmax(x, 0.0f);
    case 1: return tanh(x);
    case 2: return 1.0f / (1.0f + exp(-x));
    case 3: return alpha * x + beta;
    case 4: return x >= 0.0f ? x : alpha * x;
    case 5: return x > alpha ? x : 0.0f;
    case 6: return alpha * tanh(beta * x);
    case 7: return clamp(alpha * x + beta, 0.0f, 1.0f);
    case 8: return x >= 0.0f ? x : alpha * (exp(x) - 1.0f);
    case 9: return x / (1.0f + fabs(x));
    default: return x > 20.0f ? x : log1p(exp(x));
    }
}

float clipped(float x, float clip)
{
    return clip > 0.0f ? clamp(x, -clip, clip) : x;
}

// sum_k h[k] * R[row_base + k] over k < H (h in float)
float rnn_dot(__global const STORE_T *R, int row_base, __global const float *h, int H)
{
    float acc = 0.0f;
    int k = 0;
#if RNN_VEC == 4
    float4 acc4 = (float4)(0.0f);
    for (; k + 4 <= H; k += 4)
        acc4 += LOADFN(4, R, row_base + k) * vload4(0, h + k);
    acc = acc4.s0 + acc4.s1 + acc4.s2 + acc4.s3;
#endif
    for (; k < H; ++k)
        acc += LOADF(R, row_base + k) * h[k];
    return acc;
}

// state[d][b][j] = initial value (or 0); launched over (H, batch, dirs)
__kernel void rnn_init(__global const STORE_T *h0, __global const STORE_T *c0,
                       __global float *h, __global float *c, const int4 flags)
{
    const int H = get_global_size(0), batch = get_global_size(1);
    const int i = (get_global_id(2) * batch + get_global_id(1)) * H + get_global_id(0);
    h[i] = flags.s0 ? LOADF(h0, i) : 0.0f;
    if (flags.s2)
        c[i] = flags.s1 ? LOADF(c0, i) : 0.0f;
}

// Y_h (and Y_c) from the final states, in the output's layout; a batch entry
// with sequence length 0 gets zeros (as onnxruntime does)
__kernel void rnn_final(__global const float *h, __global const float *c,
                        __global STORE_T *yh, __global STORE_T *yc, const int4 strides,
                        __global const int *lens)
{
    const int j = get_global_id(0), b = get_global_id(1), d = get_global_id(2);
    const int H = get_global_size(0), batch = get_global_size(1);
    const int i = (d * batch + b) * H + j;
    const int o = d * strides.s0 + b * strides.s1 + j;
    const bool empty = lens[b] <= 0;
    if (strides.s2)
        STOREF(yh, o, empty ? 0.0f : h[i]);
    if (strides.s3)
        STOREF(yc, o, empty ? 0.0f : c[i]);
}

#define STEP_SETUP \
    const int j = get_global_id(0), b = get_global_id(1); \
    const int H = geo.s0; \
    const int xrow = geo.s2 + b * geo.s3; \
    const int st = geo.s4 + 0, si = geo.s7 + b * H; \
    const int y = yo.s0 + b * yo.s1 + j; \
    const bool active = geo.s1 < lens[b];

__kernel void rnn_step(__global const STORE_T *xw, __global const STORE_T *R,
                       __global const STORE_T *B, __global const int *lens,
                       __global const float *h_prev, __global float *h_next,
                       __global STORE_T *Y, const int8 geo, const int4 yo,
                       const int4 act, const float4 alpha, const float4 beta, const float clip)
{
    STEP_SETUP
    if (!active) {
        h_next[si + j] = h_prev[si + j];
        STOREF(Y, y, 0.0f);
        return;
    }
    float x = LOADF(xw, xrow + j) + rnn_dot(R, st + j * H, h_prev + si, H)
        + LOADF(B, geo.s5 + j) + LOADF(B, geo.s5 + H + j);
    const float h = rnn_act(act.s0, clipped(x, clip), alpha.s0, beta.s0);
    h_next[si + j] = h;
    STOREF(Y, y, h);
}

// gate order i, o, f, c; B = [Wb (4H), Rb (4H)]; P = [Pi, Po, Pf]
__kernel void lstm_step(__global const STORE_T *xw, __global const STORE_T *R,
                        __global const STORE_T *B, __global const int *lens,
                        __global const float *h_prev, __global float *h_next,
                        __global STORE_T *Y, const int8 geo, const int4 yo,
                        const int4 act, const float4 alpha, const float4 beta, const float clip,
                        __global const STORE_T *P, __global const float *c_prev,
                        __global float *c_next)
{
    STEP_SETUP
    if (!active) {
        h_next[si + j] = h_prev[si + j];
        c_next[si + j] = c_prev[si + j];
        STOREF(Y, y, 0.0f);
        return;
    }
    float g[4];
    for (int q = 0; q < 4; ++q)
        g[q] = LOADF(xw, xrow + q * H + j) + rnn_dot(R, st + (q * H + j) * H, h_prev + si, H)
            + LOADF(B, geo.s5 + q * H + j) + LOADF(B, geo.s5 + (4 + q) * H + j);
    const float c_old = c_prev[si + j];
    const float pi = LOADF(P, geo.s6 + j), po = LOADF(P, geo.s6 + H + j);
    const float pf = LOADF(P, geo.s6 + 2 * H + j);
    const float i_gate = rnn_act(act.s0, clipped(g[0] + pi * c_old, clip), alpha.s0, beta.s0);
#ifdef INPUT_FORGET
    const float f_gate = 1.0f - i_gate;
#else
    const float f_gate = rnn_act(act.s0, clipped(g[2] + pf * c_old, clip), alpha.s0, beta.s0);
#endif
    const float cand = rnn_act(act.s1, clipped(g[3], clip), alpha.s1, beta.s1);
    const float c_new = f_gate * c_old + i_gate * cand;
    const float o_gate = rnn_act(act.s0, clipped(g[1] + po * c_new, clip), alpha.s0, beta.s0);
    const float h = o_gate * rnn_act(act.s2, c_new, alpha.s2, beta.s2);
    c_next[si + j] = c_new;
    h_next[si + j] = h;
    STOREF(Y, y, h);
}

// GRU, gate order z, r, h; B = [Wb (3H), Rb (3H)].  With LINEAR_BEFORE_RESET
// one kernel does the step; otherwise gru_reset first stores r * h_prev and z.
__kernel void gru_step(__global const STORE_T *xw, __global const STORE_T *R,
                       __global const STORE_T *B, __global const int *lens,
                       __global const float *h_prev, __global float *h_next,
                       __global STORE_T *Y, const int8 geo, const int4 yo,
                       const int4 act, const float4 alpha, const float4 beta, const float clip,
                       __global const float *rh, __global const float *zbuf)
{
    STEP_SETUP
    if (!active) {
        h_next[si + j] = h_prev[si + j];
        STOREF(Y, y, 0.0f);
        return;
    }
    const float wbh = LOADF(B, geo.s5 + 2 * H + j), rbh = LOADF(B, geo.s5 + 5 * H + j);
    const int rrow = st + (2 * H + j) * H;
#ifdef LINEAR_BEFORE_RESET
    float zr[2];
    for (int q = 0; q < 2; ++q)
        zr[q] = rnn_act(act.s0, clipped(LOADF(xw, xrow + q * H + j)
                        + rnn_dot(R, st + (q * H + j) * H, h_prev + si, H)
                        + LOADF(B, geo.s5 + q * H + j) + LOADF(B, geo.s5 + (3 + q) * H + j),
                        clip), alpha.s0, beta.s0);
    const float z = zr[0];
    const float pre = LOADF(xw, xrow + 2 * H + j) + wbh
        + zr[1] * (rnn_dot(R, rrow, h_prev + si, H) + rbh);
#else
    const float z = zbuf[si + j];
    const float pre = LOADF(xw, xrow + 2 * H + j) + wbh + rbh + rnn_dot(R, rrow, rh + si, H);
#endif
    const float cand = rnn_act(act.s1, clipped(pre, clip), alpha.s1, beta.s1);
    const float h = (1.0f - z) * cand + z * h_prev[si + j];
    h_next[si + j] = h;
    STOREF(Y, y, h);
}

__kernel void gru_reset(__global const STORE_T *xw, __global const STORE_T *R,
                        __global const STORE_T *B, __global const int *lens,
                        __global const float *h_prev, __global float *rh,
                        __global float *zbuf, const int8 geo, const int4 yo,
                        const int4 act, const float4 alpha, const float4 beta, const float clip)
{
    STEP_SETUP
    if (!active)
        return;
    float zr[2];
    for (int q = 0; q < 2; ++q)
        zr[q] = rnn_act(act.s0, clipped(LOADF(xw, xrow + q * H + j)
                        + rnn_dot(R, st + (q * H + j) * H, h_prev + si, H)
                        + LOADF(B, geo.s5 + q * H + j) + LOADF(B, geo.s5 + (3 + q) * H + j),
                        clip), alpha.s0, beta.s0);
    zbuf[si + j] = zr[0];
    rh[si + j] = zr[1] * h_prev[si + j];
}
