// Counts heap allocations (malloc and friends, which operator new also uses) between start and
// stop, to prove that a training or sampling step allocates nothing. Linking this object replaces
// the process's malloc family with counting wrappers around glibc's.
#pragma once

#include <cstddef>

namespace ddpm::test {

struct HeapCount {
  long ours = 0;            // allocations outside oneDNN's execute()
  long in_dnnl = 0;         // oneDNN's own per-call bookkeeping (its argument tables)
  long dnnl_max_bytes = 0;  // the largest of those
};

void start_heap_count();
HeapCount stop_heap_count();

}  // namespace ddpm::test
