// Constants of the exp_sum kernels (kernel_table.h), shared by every table so they compute the same
// bits: exp(d) = 2^n * exp(r), n = round(d log2 e), r = d - n ln 2 (ln 2 split in two so the
// reduction is exact to F32), exp(r) ~ 1 + r + r^2 P(r) on |r| <= ln 2 / 2 (Cephes expf).
#pragma once

namespace tidal {

inline constexpr float kExpMin = -87.0f;  // below: 0 (2^-126 is about e^-87.3; no subnormals)
inline constexpr float kLog2e = 1.44269504088896341f;
inline constexpr float kLn2Hi = 0.693359375f;
inline constexpr float kLn2Lo = -2.12194440e-4f;
inline constexpr float kExpP[6] = {1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f,
                                   4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f};

}  // namespace tidal
