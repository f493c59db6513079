// The half-precision type the kernels use, for the emulator's host build (stands in for the
// toolkit's header of the same name): storage and the exact conversion to f32.
#pragma once

struct __half {
    unsigned short x;
};
struct alignas(4) __half2 {
    __half x, y;
};

namespace gptoss_sim {
// An IEEE half's value as f32, exactly (subnormals, infinities and NaN included).
inline float half_to_float(unsigned short h) {
    const unsigned int sign = (unsigned int)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
    unsigned int bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else if (exp != 0) {
        bits = sign | ((exp + 112u) << 23) | (mant << 13);
    } else if (mant == 0) {
        bits = sign;
    } else {
        // A subnormal: normalise the mantissa.
        int e = -1;
        unsigned int m = mant;
        do {
            e++;
            m <<= 1;
        } while (!(m & 0x400u));
        bits = sign | ((unsigned int)(112 - e) << 23) | ((m & 0x3ffu) << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}
}  // namespace gptoss_sim

inline float __half2float(__half h) { return gptoss_sim::half_to_float(h.x); }
inline float2 __half22float2(__half2 h) { return float2{__half2float(h.x), __half2float(h.y)}; }
