// Softmax (or -DLOG_SOFTMAX) along one axis of length L; rows are (outer,
// inner) pairs, the axis stride is `inner`.  Max-subtracted, float math.
#include "common.h"

__kernel void softmax(__global const STORE_T *x, __global STORE_T *y,
                      const int rows, const int L, const int inner)
{
    const int r = get_global_id(0);
    if (r >= rows)
        return;
    const int base = (r / inner) * L * inner + r % inner;
    float mx = -INFINITY;
    for (int i = 0; i < L; ++i)
        mx = fmax(mx, LOADF(x, base + i * inner));
    float sum = 0.0f;
#ifdef LOG_SOFTMAX
    for (int i = 0; i < L; ++i)
        sum += exp(LOADF(x, base + i * inner) - mx);
    const float lse = log(sum);
    for (int i = 0; i < L; ++i)
        STOREF(y, base + i * inner, LOADF(x, base + i * inner) - mx - lse);
#else
    // keep exp(x - max) in y so each exp is computed once
    for (int i = 0; i < L; ++i) {
        const float e = exp(LOADF(x, base + i * inner) - mx);
        sum += e;
        STOREF(y, base + i * inner, e);
    }
    const float inv = 1.0f / sum;
    for (int i = 0; i < L; ++i)
        STOREF(y, base + i * inner, LOADF(y, base + i * inner) * inv);
#endif
}

// Hardmax: 1 at the first maximum of each row, 0 elsewhere.
__kernel void hardmax(__global const STORE_T *x, __global STORE_T *y,
                      const int rows, const int L, const int inner)
{
    const int r = get_global_id(0);
    if (r >= rows)
        return;
    const int base = (r / inner) * L * inner + r % inner;
    float mx = -INFINITY;
    int best = 0;
    for (int i = 0; i < L; ++i) {
        const float v = LOADF(x, base + i * inner);
        if (v > mx) {
            mx = v;
            best = i;
        }
    }
    for (int i = 0; i < L; ++i)
        STOREF(y, base + i * inner, i == best ? 1.0f : 0.0f);
}
