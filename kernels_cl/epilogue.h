// Run-time epilogue of kernels that end a convolution or GEMM (gemm.cl):
// bias, residual and activation chosen by kernel arguments, not defines, so
// one program serves every layer.  Include after
// common.h (and after defining EPI_VW, for epi_store); the ACT_* macros then read their parameters from p0/p1 instead
// of -DP0/-DP1.
#ifndef CLNET_EPILOGUE_H
#define CLNET_EPILOGUE_H

// epi flags; the activation code (clnet/graph.py EPILOGUE_ACTIVATIONS) is epi >> 8
#define EPI_BIAS_ROW 1
#define EPI_BIAS_COL 2
#define EPI_RESIDUAL 4

// the activation macros of common.h read their parameters from P0 and P1
#undef P0
#undef P1
#define P0 p0
#define P1 p1
#define ACT_SWITCH(x) \
    switch (act) { \
    case 1: return ACT_RELU(x); \
    case 2: return ACT_CLIP(x); \
    case 3: return ACT_LEAKYRELU(x); \
    case 4: return ACT_SIGMOID(x); \
    case 5: return ACT_TANH(x); \
    case 6: return ACT_HARDSIGMOID(x); \
    case 7: return ACT_HARDSWISH(x); \
    case 8: return ACT_GELU(x); \
    case 9: return ACT_SWISH(x); \
    case 10: return ACT_GELUTANH(x); \
    default: return (x); \
    }

inline float act_one(const float x, const int act, const float p0, const float p1)
{
    ACT_SWITCH(x)
}

inline float8 act8(const float8 x, const int act, const float p0, const float p1)
{
    ACT_SWITCH(x)
}

// With EPI_VW (the includer's accumulator vector width: 4, 8 or 16) defined
// before this header: the activation on such vectors, and the store of one
// vector of outputs (residual added, activation applied; fewer than EPI_VW
// valid lanes go one by one).
#ifdef EPI_VW
#define EPI_VT CAT(float, EPI_VW)

// 16-wide math builtins (fmax, clamp, exp on float16) crash or call out of
// line on some CPU compilers without AVX-512: apply them in halves.  Out of
// line (COLD_CALL) where the compiler takes the attribute: the activations
// that need exp (Sigmoid, Tanh, GELU), inlined into every stored vector of a
// tile, made a CPU compiler's first-run code generation seconds longer.
COLD_CALL EPI_VT act_vec_any(const EPI_VT x, const int act, const float p0, const float p1)
{
#if EPI_VW == 16
    return (float16)(act8(x.lo, act, p0, p1), act8(x.hi, act, p0, p1));
#elif EPI_VW == 8
    return act8(x, act, p0, p1);
#else
    ACT_SWITCH(x)
#endif
}

// No activation and the cheap ones (Relu, Clip, LeakyRelu, HardSwish)
// inline, as compares and selects (a NaN stays NaN, as in onnxruntime);
// the rest through act_vec_any (a call per vector: 2% of
// ResNet-18's time on PoCL when Relu went that way too).
inline EPI_VT act_vec(const EPI_VT x, const int act, const float p0, const float p1)
{
    if (act == 0)
        return x;
    if (act == 1)
        return FMAX(x, (EPI_VT)(0.0f));
    if (act == 2) {     // Clip (Relu6)
        const EPI_VT lo = FMAX(x, (EPI_VT)(p0));
        return FMIN(lo, (EPI_VT)(p1));
    }
    if (act == 3)       // LeakyRelu
        return x > (EPI_VT)(0.0f) ? x : x * p0;
    if (act == 7) {     // HardSwish: x * clamp(x / 6 + 1/2, 0, 1)
        EPI_VT t = x * (1.0f / 6.0f) + 0.5f;
        t = t > (EPI_VT)(0.0f) ? t : (EPI_VT)(0.0f);
        return x * (t < (EPI_VT)(1.0f) ? t : (EPI_VT)(1.0f));
    }
    return act_vec_any(x, act, p0, p1);
}

HOT_INLINE void epi_store(__global STORE_T *C, __global const STORE_T *R, const int c_off,
                          const int n_left, EPI_VT v, const int epi, const float4 epf)
{
    const int act = epi >> 8;
    if (n_left >= EPI_VW) {
        if (epi & EPI_RESIDUAL)
            v += LOADFN(EPI_VW, R, c_off);
        STOREFN(EPI_VW, C, c_off, act_vec(v, act, epf.s1, epf.s2));
        return;
    }
    // the activation on the whole vector, the lanes stored one by one (a
    // scalar activation per lane cost conv_direct's tiles at a row's end,
    // 28-pixel rows in 16-wide vectors, about as much as their taps)
    float t[EPI_VW];
    if (epi & EPI_RESIDUAL) {
        CAT(vstore, EPI_VW)(v, 0, t);
        for (int j = 0; j < n_left; ++j)
            t[j] += LOADF(R, c_off + j);
        v = CAT(vload, EPI_VW)(0, t);
    }
    CAT(vstore, EPI_VW)(act_vec(v, act, epf.s1, epf.s2), 0, t);
    for (int j = 0; j < n_left; ++j)
        STOREF(C, c_off + j, t[j]);
}
#endif

#endif  // CLNET_EPILOGUE_H
