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

// ---------------------------------------------------------------------------
// A whole sequence in one launch (rnn_seq, gru_seq, lstm_seq; built with
// -DRNN_HIDDEN=H).  One work-group per (batch entry, direction) runs every
// time step in a loop: work-item i owns the RNN_UNITS consecutive hidden
// units from i * RNN_UNITS (the group has ceil(H / RNN_UNITS) items; the
// last one's lanes past H compute on zero rows of RT and are not stored),
// h lives in local memory as ping-pong halves, so one barrier per step
// separates the reads of h_t from the writes of h_t+1 (GRU without
// linear_before_reset: two, r * h must be complete before h~).  RT is R
// packed per direction (rnn.py, _recurrent_weights_packed): with one unit
// per item R transposed, [H][gates * H], so neighbouring items read
// neighbouring floats; with more, each item's rows as one contiguous run
// [k][gate][unit] (RNN_BLOCKED).  The loop count is the batch entry's
// sequence length, uniform in the group, so every item meets every barrier;
// the steps past it only get Y = 0.  States stay float; c and the gates stay
// in the owning item's registers.
//
// geo (int8): xw t stride, xw b stride, Y t/d/b strides, Y_h d/b strides, seq
// flags (int4): has initial h, has initial c, wants Y_h/Y_c (bit 0/1), reversed
//               directions (bit d)
// acts, alphas, betas: the cell's functions (as the step kernels' act, alpha,
//               beta) of direction 0 in .lo, of direction 1 in .hi
#ifdef RNN_HIDDEN
#ifndef RNN_UNITS
  #define RNN_UNITS 1   // hidden units per work-item (a float vector of them)
#endif
#define H RNN_HIDDEN
#if RNN_UNITS == 1
  #define VT float
  #define LOADV(p, i) LOADF(p, i)
  #define STOREV(p, i, v) STOREF(p, i, v)
  #define LOADL(p, i) ((p)[i])
  #define STOREL(p, i, v) ((p)[i] = (v))
#else
  #define VT CAT(float, RNN_UNITS)
  #define LOADV(p, i) LOADFN(RNN_UNITS, p, i)
  #define STOREV(p, i, v) STOREFN(RNN_UNITS, p, i, v)
  #define LOADL(p, i) CAT(vload, RNN_UNITS)(0, (p) + (i))
  #define STOREL(p, i, v) CAT(vstore, RNN_UNITS)((v), 0, (p) + (i))
#endif
// H rounded up to whole work-items: RT and the local h have HP units
#define HP ((H + RNN_UNITS - 1) / RNN_UNITS * RNN_UNITS)

// LOADP / STOREP: a work-item's units of a per-unit tensor (xw, biases, Y,
// states); the last item's run may end past H, its extra lanes read as 0
// and are not written
#if H % RNN_UNITS
VT load_part(__global const STORE_T *p, int i, int n)
{
    float lanes[RNN_UNITS];
    for (int l = 0; l < RNN_UNITS; ++l)
        lanes[l] = l < n ? LOADF(p, i + l) : 0.0f;
    return CAT(vload, RNN_UNITS)(0, lanes);
}

void store_part(__global STORE_T *p, int i, VT v, int n)
{
    float lanes[RNN_UNITS];
    CAT(vstore, RNN_UNITS)(v, 0, lanes);
    for (int l = 0; l < n; ++l)
        STOREF(p, i + l, lanes[l]);
}
  #define LOADP(p, i) (j0 + RNN_UNITS <= H ? LOADV(p, i) : load_part(p, i, H - j0))
  #define STOREP(p, i, v) \
      { if (j0 + RNN_UNITS <= H) STOREV(p, i, v); else store_part(p, i, v, H - j0); }
#else
  #define LOADP(p, i) LOADV(p, i)
  #define STOREP(p, i, v) STOREV(p, i, v)
#endif


// rnn_act on RNN_UNITS lanes at once
VT rnn_actv(int kind, VT x, float alpha, float beta)
{
    switch (kind) {
    case 0: return fmax(x, 0.0f);
    case 1: return tanh(x);
    case 2: return 1.0f / (1.0f + exp(-x));
    case 3: return alpha * x + beta;
    case 4: return select(alpha * x, x, x >= 0.0f);
    case 5: return select((VT)(0.0f), x, x > alpha);
    case 6: return alpha * tanh(beta * x);
    case 7: return clamp(alpha * x + beta, 0.0f, 1.0f);
    case 8: return select(alpha * (exp(x) - 1.0f), x, x >= 0.0f);
    case 9: return x / (1.0f + fabs(x));
    default: return select(log1p(exp(x)), x, x > 20.0f);
    }
}

VT clippedv(VT x, float clip)
{
    return clip > 0.0f ? clamp(x, -clip, clip) : x;
}

// where RT holds R[q * H + j0 .. + RNN_UNITS][k] (see rnn.py, _recurrent_weights_packed)
#ifdef RNN_BLOCKED
  #define R_AT(k, q) (r_base + j0 * GH + ((k) * NG + (q)) * RNN_UNITS)
#else
  #define R_AT(k, q) (r_base + (k) * GH + (q) * H + j0)
#endif
#ifndef RNN_KSTEP
  #define RNN_KSTEP 4   // k (h elements) per iteration of the dot products' loop
#endif
// a0 .. a<n-1> += sum_k RT[k][gate q0 + i] * src[k] (n <= 4, a literal: the
// unused accumulators and their branches compile away).  Named accumulators,
// not an array: PoCL kept an array indexed in a loop in memory, a load and a
// store per multiply-add.  a * b + c, not fma(): see gemm.cl.
#define SEQ_FMA(n, k, q0, src, a0, a1, a2, a3) { \
        const VT hk = (VT)(src[k]); \
        a0 = LOADV(RT, R_AT(k, (q0))) * hk + a0; \
        if ((n) > 1) a1 = LOADV(RT, R_AT(k, (q0) + 1)) * hk + a1; \
        if ((n) > 2) a2 = LOADV(RT, R_AT(k, (q0) + 2)) * hk + a2; \
        if ((n) > 3) a3 = LOADV(RT, R_AT(k, (q0) + 3)) * hk + a3; \
    }
#define SEQ_DOT(n, q0, src, a0, a1, a2, a3) { \
        int k = 0; \
        for (; k + RNN_KSTEP <= H; k += RNN_KSTEP) { \
            _Pragma("unroll") \
            for (int u = 0; u < RNN_KSTEP; ++u) \
                SEQ_FMA(n, k + u, q0, src, a0, a1, a2, a3) \
        } \
        for (; k < H; ++k) \
            SEQ_FMA(n, k, q0, src, a0, a1, a2, a3) \
    }

// The set-up every sequence kernel shares: where this group's direction and
// batch entry live, its sequence length, and h_0 into local memory.
#define SEQ_SETUP(G) \
    const int NG = (G), GH = (G) * H; \
    const int j0 = get_local_id(0) * RNN_UNITS, b = get_group_id(1), d = get_group_id(2); \
    const int batch = get_num_groups(1), seq = geo.s7; \
    const int len = clamp(lens[b], 0, seq); \
    const bool reverse = (flags.s3 >> d) & 1; \
    const int r_base = d * HP * GH, b_base = d * 2 * GH, st = (d * batch + b) * H + j0; \
    const int xw_d = d * GH, y_d = d * geo.s3 + b * geo.s4 + j0; \
    const int4 act = d ? acts.hi : acts.lo; \
    const float4 alpha = d ? alphas.hi : alphas.lo, beta = d ? betas.hi : betas.lo; \
    __local float hs[2 * HP]; \
    VT h_own = flags.s0 ? LOADP(h0, st) : (VT)(0.0f); \
    STOREL(hs, j0, h_own); \
    for (int t = len; t < seq; ++t) \
        STOREP(Y, t * geo.s2 + y_d, (VT)(0.0f)); \
    barrier(CLK_LOCAL_MEM_FENCE);

// this step's time index, xw row and the two halves of hs
#define SEQ_STEP(step) \
    const int t = reverse ? len - 1 - (step) : (step); \
    const int xrow = t * geo.s0 + b * geo.s1 + xw_d; \
    __local const float *h_prev = hs + ((step) & 1) * HP; \
    __local float *h_next = hs + (((step) + 1) & 1) * HP;

// Y_h (or Y_c, flag bit 1) from a final state; zeros for an empty sequence
#define SEQ_FINAL(bit, out, state) \
    if (flags.s2 & (bit)) \
        STOREP(out, d * geo.s5 + b * geo.s6 + j0, len > 0 ? (state) : (VT)(0.0f));

#define SEQ_ARGS \
    __global const STORE_T *xw, __global const STORE_T *RT, __global const STORE_T *B, \
    __global const int *lens, __global const STORE_T *h0, __global STORE_T *Y, \
    __global STORE_T *Yh, const int8 geo, const int4 flags, \
    const int8 acts, const float8 alphas, const float8 betas, const float clip

__kernel void rnn_seq(SEQ_ARGS)
{
    SEQ_SETUP(1)
    const VT bias = LOADP(B, b_base + j0) + LOADP(B, b_base + H + j0);
    for (int step = 0; step < len; ++step) {
        SEQ_STEP(step)
        VT acc = LOADP(xw, xrow + j0) + bias;
        SEQ_DOT(1, 0, h_prev, acc, acc, acc, acc)
        h_own = rnn_actv(act.s0, clippedv(acc, clip), alpha.s0, beta.s0);
        STOREL(h_next, j0, h_own);
        STOREP(Y, t * geo.s2 + y_d, h_own);
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    SEQ_FINAL(1, Yh, h_own)
}

// gate order i, o, f, c; B = [Wb (4H), Rb (4H)]; P = [Pi, Po, Pf]
__kernel void lstm_seq(SEQ_ARGS, __global const STORE_T *c0, __global STORE_T *Yc,
                       __global const STORE_T *P)
{
    SEQ_SETUP(4)
    VT c_own = flags.s1 ? LOADP(c0, st) : (VT)(0.0f);
    VT bias[4];
    for (int q = 0; q < 4; ++q)
        bias[q] = LOADP(B, b_base + q * H + j0) + LOADP(B, b_base + (4 + q) * H + j0);
    const VT pi = LOADP(P, d * 3 * H + j0), po = LOADP(P, d * 3 * H + H + j0);
    const VT pf = LOADP(P, d * 3 * H + 2 * H + j0);
    for (int step = 0; step < len; ++step) {
        SEQ_STEP(step)
        VT gi = LOADP(xw, xrow + j0) + bias[0], go = LOADP(xw, xrow + H + j0) + bias[1];
        VT gf = LOADP(xw, xrow + 2 * H + j0) + bias[2];
        VT gc = LOADP(xw, xrow + 3 * H + j0) + bias[3];
        SEQ_DOT(4, 0, h_prev, gi, go, gf, gc)
        const VT i_gate = rnn_actv(act.s0, clippedv(gi + pi * c_own, clip), alpha.s0, beta.s0);
#ifdef INPUT_FORGET
        const VT f_gate = 1.0f - i_gate;
#else
        const VT f_gate = rnn_actv(act.s0, clippedv(gf + pf * c_own, clip), alpha.s0, beta.s0);
#endif
        const VT cand = rnn_actv(act.s1, clippedv(gc, clip), alpha.s1, beta.s1);
        c_own = f_gate * c_own + i_gate * cand;
        const VT o_gate = rnn_actv(act.s0, clippedv(go + po * c_own, clip), alpha.s0, beta.s0);
        h_own = o_gate * rnn_actv(act.s2, c_own, alpha.s2, beta.s2);
        STOREL(h_next, j0, h_own);
        STOREP(Y, t * geo.s2 + y_d, h_own);
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    SEQ_FINAL(1, Yh, h_own)
    SEQ_FINAL(2, Yc, c_own)
}

// gate order z, r, h; B = [Wb (3H), Rb (3H)]
__kernel void gru_seq(SEQ_ARGS)
{
    SEQ_SETUP(3)
    VT bias[3];
    for (int q = 0; q < 3; ++q)
        bias[q] = LOADP(B, b_base + q * H + j0) + LOADP(B, b_base + (3 + q) * H + j0);
    const VT wbh = LOADP(B, b_base + 2 * H + j0), rbh = LOADP(B, b_base + 5 * H + j0);
#ifndef LINEAR_BEFORE_RESET
    __local float rh[HP];
#endif
    for (int step = 0; step < len; ++step) {
        SEQ_STEP(step)
        VT gz = LOADP(xw, xrow + j0) + bias[0], gr = LOADP(xw, xrow + H + j0) + bias[1];
        VT gh = (VT)(0.0f);
#ifdef LINEAR_BEFORE_RESET
        SEQ_DOT(3, 0, h_prev, gz, gr, gh, gh)
#else
        SEQ_DOT(2, 0, h_prev, gz, gr, gh, gh)
#endif
        const VT z = rnn_actv(act.s0, clippedv(gz, clip), alpha.s0, beta.s0);
        const VT r = rnn_actv(act.s0, clippedv(gr, clip), alpha.s0, beta.s0);
        const VT xh = LOADP(xw, xrow + 2 * H + j0) + wbh;
#ifdef LINEAR_BEFORE_RESET
        const VT pre = xh + r * (gh + rbh);
#else
        STOREL(rh, j0, r * h_own);
        barrier(CLK_LOCAL_MEM_FENCE);
        VT pre = xh + rbh;
        SEQ_DOT(1, 2, rh, pre, pre, pre, pre)
#endif
        const VT cand = rnn_actv(act.s1, clippedv(pre, clip), alpha.s1, beta.s1);
        h_own = (1.0f - z) * cand + z * h_own;
        STOREL(h_next, j0, h_own);
        STOREP(Y, t * geo.s2 + y_d, h_own);
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    SEQ_FINAL(1, Yh, h_own)
}
#undef H
#endif  // RNN_HIDDEN
