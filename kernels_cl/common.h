// Shared definitions for every clnet kernel (OpenCL C 1.2, no extensions).
//
// Storage type and arithmetic type are separate: tensors are stored as
// STORE_T (float, or half with -DSTORE_HALF) and all arithmetic is float.
// Half storage goes through vload_half/vstore_half, which every OpenCL 1.2
// device supports without cl_khr_fp16.
#ifndef CLNET_COMMON_H
#define CLNET_COMMON_H

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)

// A helper called once per stored vector, forced inline where the compiler
// takes the attribute (clang-based ones): PoCL kept epi_store out of line,
// a call per vector, and a 1x1 conv with 16 input channels spent a quarter of
// its time in the calls (0.97 -> 0.75 ms inlined).
#ifndef HOT_INLINE
  #ifdef __clang__
    #define HOT_INLINE inline __attribute__((always_inline))
  #else
    #define HOT_INLINE inline
  #endif
#endif

#ifndef COLD_CALL
  #ifdef __clang__
    #define COLD_CALL __attribute__((noinline))
  #else
    #define COLD_CALL
  #endif
#endif

// VLOADG(n, p, i) / VSTOREG(n, p, i, v): n floats at the __global float
// pointer p + i (any element alignment) as a float vector.  Where the
// compiler is clang-based, a dereference of an under-aligned vector type:
// one unaligned load or store, where PyPI's PoCL 3.0 keeps vload8 an
// out-of-line call whose every use spilled a GEMM tile's accumulators
// around it (45 GFLOP/s at n=1024).  -DNO_VLOAD_U falls back to vloadn (for
// a compiler that mishandles the attribute: none is known).
#if defined(__clang__) && !defined(NO_VLOAD_U)
  // VLOAD_U: UNALIGNED_VEC(T, n, name) declares an n-vector of T aligned
  // like one T (elementwise.cl's raw copies use it for their element types)
  #define VLOAD_U 1
  #define UNALIGNED_VEC(T, n, name) \
      typedef T name __attribute__((ext_vector_type(n), aligned(sizeof(T))));
  UNALIGNED_VEC(float, 2, clnet_float2_u)
  UNALIGNED_VEC(float, 4, clnet_float4_u)
  UNALIGNED_VEC(float, 8, clnet_float8_u)
  UNALIGNED_VEC(float, 16, clnet_float16_u)
  #define VLOADG(n, p, i) (*(const __global CAT(CAT(clnet_float, n), _u) *)((p) + (i)))
  #define VSTOREG(n, p, i, v) (*(__global CAT(CAT(clnet_float, n), _u) *)((p) + (i)) = (v))
#else
  #define VLOADG(n, p, i) CAT(vload, n)(0, (p) + (i))
  #define VSTOREG(n, p, i, v) CAT(vstore, n)((v), 0, (p) + (i))
#endif

// max and min (scalars or vectors) as compares and a select that propagate
// a NaN operand, as numpy, PyTorch and onnxruntime's elementwise Max/Min
// do (fmax/fmin return the other operand).  PyPI's PoCL 3.0 also calls the
// fmax builtin out of line, in pooling's and softmax's inner loops.
#define FMAX(a, b) ((a) >= (b) || (a) != (a) ? (a) : (b))
#define FMIN(a, b) ((a) <= (b) || (a) != (a) ? (a) : (b))

#ifdef STORE_HALF
  #define STORE_T half
  #define LOADF(p, i) vload_half((i), (p))
  #define STOREF(p, i, v) vstore_half((v), (i), (p))
  // n-wide loads/stores at element offset i (i need not be a multiple of n)
  #define LOADFN(n, p, i) CAT(vload_half, n)(0, (p) + (i))
  #define STOREFN(n, p, i, v) CAT(vstore_half, n)((v), 0, (p) + (i))
#else
  #define STORE_T float
  #define LOADF(p, i) ((p)[i])
  #define STOREF(p, i, v) ((p)[i] = (v))
  // (p a __global pointer: tensors)
  #define LOADFN(n, p, i) VLOADG(n, p, i)
  #define STOREFN(n, p, i, v) VSTOREG(n, p, i, v)
#endif

// Native half arithmetic (--precision fp16-compute): only where the device
// has cl_khr_fp16 (the host adds -DHAS_FP16); elementwise math then runs in
// half while GEMM, conv and reductions keep their float accumulators.
#if defined(COMPUTE_HALF) && defined(HAS_FP16)
  #pragma OPENCL EXTENSION cl_khr_fp16 : enable
  #ifndef CT
    #define CT half
  #endif
#endif

// Activations usable as a fused epilogue (-DACT=ACT_RELU ...).  They work on
// scalars and vectors alike; P0/P1 are the op's parameters (alpha, min/max).
#define ACT_NONE(x) (x)
#define ACT_RELU(x) FMAX((x), 0.0f)
#define ACT_CLIP(x) FMIN(FMAX((x), (float)(P0)), (float)(P1))
#define ACT_LEAKYRELU(x) select((x) * (float)(P0), (x), (x) > 0.0f)
#define ACT_SIGMOID(x) (1.0f / (1.0f + exp(-(x))))
#define ACT_TANH(x) tanh(x)
#define ACT_HARDSIGMOID(x) FMIN(FMAX((x) * (float)(P0) + (float)(P1), 0.0f), 1.0f)
#define ACT_HARDSWISH(x) ((x) * clamp((x) * (1.0f / 6.0f) + 0.5f, 0.0f, 1.0f))
#define ACT_SWISH(x) ((x) / (1.0f + exp(-(float)(P0) * (x))))
// GELU's tanh form, 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), through
// 1 + tanh(u) = 2 / (1 + exp(-2u)): one exp, for floats and float vectors
#define ACT_GELUTANH(x) ((x) / (1.0f + exp(-1.5957691216057308f * ((x) + 0.044715f * (x) * (x) * (x)))))
// GELU (exact form, 0.5 x (1 + erf(x / sqrt 2))) with erf from Abramowitz &
// Stegun 7.1.26 (absolute error 1.5e-7): one expression of overloaded
// builtins, so it serves floats and float vectors (repeats fold away).
#define GELU_T_(az) (1.0f / (1.0f + 0.3275911f * (az)))
#define GELU_POLY_(t) ((t) * (0.254829592f + (t) * (-0.284496736f + (t) * (1.421413741f \
                      + (t) * (-1.453152027f + (t) * 1.061405429f)))))
#define ACT_GELU(x) (0.5f * (x) * (1.0f + copysign(1.0f - GELU_POLY_(GELU_T_( \
                     fabs((x) * 0.70710678118654752f))) * exp(-0.5f * (x) * (x)), (x))))

#ifndef P0
  #define P0 0.0f
#endif
#ifndef P1
  #define P1 0.0f
#endif

#endif  // CLNET_COMMON_H
