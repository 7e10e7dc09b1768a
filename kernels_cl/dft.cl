// DFT along one axis by direct summation (O(n^2), exact index arithmetic).
// The input is seen as [outer][len_in][inner][c_in] (c_in 1: real,
// 2: interleaved complex) and the output as [outer][len_out][inner][c_out].
// Output bin k of an n-point transform sums x[t] * exp(-+2 pi i k t / n) over
// the first `terms` input samples; the angle uses (k t mod n) so that long
// transforms keep their phase accurate in float.
#include "common.h"

#ifndef C_IN
  #define C_IN 2            // 1: real input, 2: complex (re, im) pairs
#endif
#ifndef C_OUT
  #define C_OUT 2           // 1: real part only (inverse one-sided), 2: complex
#endif
#ifndef INVERSE
  #define INVERSE 0         // 1: exp(+i...) and the 1/n scale
#endif
#ifndef HERMITIAN
  #define HERMITIAN 0       // 1: the input is bins 0..n/2 of a Hermitian spectrum
#endif
#ifndef ACC_DOUBLE
  #define ACC_DOUBLE 0      // 1: twiddles and sums in double (host sets it with cl_khr_fp64)
#endif

#if ACC_DOUBLE
  #pragma OPENCL EXTENSION cl_khr_fp64 : enable
  typedef double acc_t;
#else
  typedef float acc_t;
#endif

__kernel void dft(__global const STORE_T *x, __global STORE_T *y,
                  const int n, const int terms, const int len_in, const int len_out,
                  const int inner)
{
    const int i = get_global_id(0);
    const int k = get_global_id(1);
    const int o = get_global_id(2);
    if (i >= inner || k >= len_out)
        return;
    const acc_t sign = INVERSE ? 1 : -1;
    acc_t re = 0, im = 0;
    long step = (long)k % n;
    long phase = 0;   // k * t mod n
    for (int t = 0; t < terms; ++t) {
        const long src = (((long)o * len_in + t) * inner + i) * C_IN;
        const acc_t xr = LOADF(x, src);
        const acc_t xi = C_IN == 2 ? LOADF(x, src + 1) : 0.0f;
        const acc_t angle = 2 * (acc_t)phase / (acc_t)n;
        const acc_t c = cospi(angle), s = sign * sinpi(angle);
        acc_t w = 1;
#if HERMITIAN
        // the mirrored bins n - t contribute the conjugate: twice the real part
        w = (t == 0 || 2 * t == n) ? 1 : 2;
#endif
        re += w * (xr * c - xi * s);
        im += w * (xr * s + xi * c);
        phase += step;
        if (phase >= n)
            phase -= n;
    }
    if (INVERSE) {
        re /= (acc_t)n;
        im /= (acc_t)n;
    }
    const long dst = (((long)o * len_out + k) * inner + i) * C_OUT;
    STOREF(y, dst, (float)re);
    if (C_OUT == 2)
        STOREF(y, dst + 1, (float)im);
}

// STFT: frame f of signal row b is x[b][f * step + t] for t < width (zero
// past the signal's end), times window[t]; output bin k of its n-point DFT
// goes to y[b][f][k][re, im].  gsize (bins, frames, batch).
#ifndef HAS_WINDOW
  #define HAS_WINDOW 0      // 1: frames are weighted by `window`
#endif

__kernel void stft(__global const STORE_T *x, __global const STORE_T *window,
                   __global STORE_T *y, const int n, const int width, const int step,
                   const int len, const int bins, const int frames)
{
    const int k = get_global_id(0);
    const int f = get_global_id(1);
    const int b = get_global_id(2);
    if (k >= bins || f >= frames)
        return;
    acc_t re = 0, im = 0;
    const long start = (long)f * step;
    const long step_k = (long)k % n;
    long phase = 0;   // k * t mod n
    const int terms = min(width, n);
    for (int t = 0; t < terms && start + t < len; ++t) {
        const long src = ((long)b * len + start + t) * C_IN;
        acc_t xr = LOADF(x, src);
        acc_t xi = C_IN == 2 ? LOADF(x, src + 1) : 0.0f;
#if HAS_WINDOW
        const acc_t w = LOADF(window, t);
        xr *= w;
        xi *= w;
#endif
        const acc_t angle = 2 * (acc_t)phase / (acc_t)n;
        const acc_t c = cospi(angle), s = -sinpi(angle);
        re += xr * c - xi * s;
        im += xr * s + xi * c;
        phase += step_k;
        if (phase >= n)
            phase -= n;
    }
    const long dst = (((long)b * frames + f) * bins + k) * 2;
    STOREF(y, dst, (float)re);
    STOREF(y, dst + 1, (float)im);
}
