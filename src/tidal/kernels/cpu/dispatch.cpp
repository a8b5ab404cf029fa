#include "tidal/kernels/kernel_table.h"

namespace tidal {

const KernelTable& kernels_for(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kAvx512: return kernel_table_avx512();
    case CpuIsa::kAvx2: return kernel_table_avx2();
    case CpuIsa::kScalar: break;
  }
  return kernel_table_scalar();
}

const KernelTable& kernels() {
  static const KernelTable& table = kernels_for(cpu_isa());
  return table;
}

}  // namespace tidal
