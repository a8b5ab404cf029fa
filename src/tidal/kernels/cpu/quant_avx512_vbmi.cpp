// The AVX-512 VNNI quantized table compiled again with AVX512-VBMI (CMakeLists.txt adds
// -mavx512vbmi to this file only): quant_avx512.cpp with TIDAL_QUANT_AVX512_VBMI, which switches
// the W4A8 FP4 code decode to vpermb, and with its two external names renamed so that both copies
// link. Everything else in that file is in anonymous namespaces, private to each copy. The avx512
// KernelTable picks this table on CPUs with AVX512_VBMI (kernel_table_avx512()); the results are
// the same bits (QuantKernelDispatch.VbmiTableGivesTheVnniTablesBits).
#define TIDAL_QUANT_AVX512_VBMI 1
#define quant_kernel_table_avx512_vnni quant_kernel_table_avx512_vbmi
#define kQuantKernelTableAvx2Vnni kQuantKernelTableAvx2VnniForVbmi
#include "quant_avx512.cpp"  // NOLINT(bugprone-suspicious-include)
