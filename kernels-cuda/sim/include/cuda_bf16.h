// The bfloat16 type the kernels use, for the emulator's host build (stands in for the
// toolkit's header of the same name): storage and round-to-nearest-even from f32.
#pragma once

struct __nv_bfloat16 {
    unsigned short x;
};

// f32 → bf16, rounded to nearest, ties to even; NaN stays a (quiet) NaN.
inline __nv_bfloat16 __float2bfloat16_rn(float f) {
    unsigned int u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return __nv_bfloat16{(unsigned short)((u >> 16) | 0x40u)};
    u += 0x7fffu + ((u >> 16) & 1u);
    return __nv_bfloat16{(unsigned short)(u >> 16)};
}
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 b) { return b.x; }
inline float __bfloat162float(__nv_bfloat16 b) {
    const unsigned int u = (unsigned int)b.x << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
