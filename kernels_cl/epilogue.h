// Run-time epilogue of kernels that end a convolution or GEMM (gemm.cl):
// bias, residual and activation chosen by kernel arguments, not defines, so
// one program serves every layer.  Include after
// common.h; the ACT_* macros then read their parameters from p0/p1 instead
// of -DP0/-DP1.
#ifndef CLNET_EPILOGUE_H
#define CLNET_EPILOGUE_H

// epi flags; the activation code (clnet/ops/gemm.py ACT_CODES) is epi >> 8
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

#endif  // CLNET_EPILOGUE_H
