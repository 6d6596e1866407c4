// CIFAR-10, binary version (cifar-10-batches-bin): records of 1 label byte + 3072 bytes of R, G, B
// planes of 32x32.
#pragma once

#include <string>

#include "ddpm/data/dataset.h"

namespace ddpm {

// DIR/data_batch_1..5.bin (train) or DIR/test_batch.bin (test) as [n, 32, 32, 3] with labels 0..9.
// Every file is checked (present, size a non-zero multiple of 3073) before anything is allocated.
Dataset load_cifar10(const std::string& dir, Split split = Split::train);

}  // namespace ddpm
