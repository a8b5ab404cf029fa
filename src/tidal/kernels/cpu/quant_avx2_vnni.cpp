// AVX2 + AVX-VNNI quantized kernels (VEX-encoded 256-bit vpdpbusd: Intel client cores from Alder
// Lake on, Zen 5; CPUs with AVX-VNNI but no AVX-512 get their int8 products from here): the AVX2
// kernels of quant_avx2.cpp, compiled again with TIDAL_QUANT_AVXVNNI, which makes dot4_acc one
// vpdpbusd instead of vpmaddubsw + vpmaddwd + vpaddd. The integers are the same (exact sums), so
// the results are the same bits as the AVX2 table's. Same ODR rule as quant_avx512.cpp: the
// included file's contents are in an anonymous namespace, private to this translation unit.
#define TIDAL_QUANT_AVXVNNI 1
#include "quant_avx2.cpp"  // NOLINT(bugprone-suspicious-include)

namespace tidal {

const QuantKernelTable& quant_kernel_table_avx2_vnni() { return kQuantKernelTableAvxVnni; }

}  // namespace tidal
