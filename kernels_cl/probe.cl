// Device speed probe: a small register-blocked matmul, C = A * B (n x n).
// Each work-item computes 8 consecutive columns of one row.  Used only to
// rank several platforms of the same device type.
__kernel void probe(__global const float *a, __global const float *b,
                    __global float *c, const int n)
{
    const int col = get_global_id(0) * 8;
    const int row = get_global_id(1);
    float8 acc = (float8)(0.0f);
    for (int k = 0; k < n; ++k) {
        const float8 bv = vload8(0, b + k * n + col);
        acc = a[row * n + k] * bv + acc;
    }
    vstore8(acc, 0, c + row * n + col);
}
