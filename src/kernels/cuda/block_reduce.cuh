// Internal to the CUDA kernels: a sum over a thread block in a fixed order, so a reduction gives the
// same bits on every run (warp shuffles, then the warp totals added in warp order).
#pragma once

// Every thread of the block gets the total. The block's thread count (blockDim.x * blockDim.y)
// must be a multiple of 32, at most 1024; every thread of the block must call it.
template <class T>
__device__ T block_sum(T v) {
  __shared__ T warp_totals[32];
  const unsigned tid = threadIdx.y * blockDim.x + threadIdx.x;
  const unsigned warps = blockDim.x * blockDim.y / 32;
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
  __syncthreads();  // a previous call's readers are done with warp_totals
  if ((tid & 31) == 0) warp_totals[tid >> 5] = v;
  __syncthreads();
  T total = 0;
  for (unsigned w = 0; w < warps; ++w) total += warp_totals[w];
  return total;
}

// One block: *out = partial[0] + ... + partial[count - 1], in a fixed order (the second pass of a
// two-pass reduction whose first pass wrote one partial per block).
template <class T>
__global__ void sum_partials_kernel(T* out, const T* partial, int count) {
  T acc = 0;
  for (int i = threadIdx.x; i < count; i += blockDim.x) acc += partial[i];
  acc = block_sum(acc);
  if (threadIdx.x == 0) *out = acc;
}
