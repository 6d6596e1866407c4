// Internal to the CUDA backend: the small kernels around cuDNN and cuBLASLt (zero-padded NHWC
// operand copies and their crops, weight layout changes, bias add, deterministic column sums) and
// the one workspace those libraries share.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ddpm::cuda::detail {

// The element type of a planned operand copy: fp32, or bf16 stored as uint16_t (rounded to
// nearest even, as cpu::convert).
enum class Element { f32, bf16 };
inline size_t element_bytes(Element e) { return e == Element::f32 ? 4 : 2; }

struct Nhwc {
  int64_t n = 0, h = 0, w = 0, c = 0;
  constexpr int64_t size() const { return n * h * w * c; }  // constexpr: callable in kernels too
};

// dst [n, dst.h, dst.w, dst.c] (type e) from src [n, src.h, src.w, src.c] fp32, placed at row `top`
// and column `left`; everything outside src (the spatial border and channels >= src.c) is zero.
// With equal shapes and no offset it is a plain copy or bf16 rounding.
void pad_nhwc(void* dst, Element e, Nhwc dst_shape, const float* src, Nhwc src_shape, int64_t top, int64_t left);
// The inverse: dst [n, dst.h, dst.w, dst.c] fp32 = the window of src (type e) at (top, left), its
// first dst.c channels, plus bias[c] when bias is not null.
void crop_nhwc(float* dst, Nhwc dst_shape, const void* src, Element e, Nhwc src_shape, int64_t top, int64_t left,
               const float* bias);

// PyTorch weights w [o, i, k, k] fp32 -> dst [o_pad, k, k, i_pad] (cuDNN's KRSC) of type e, zero
// where o >= out or i >= in.
void oihw_to_ohwi(void* dst, Element e, const float* w, int64_t out, int64_t in, int64_t k, int64_t out_pad,
                  int64_t in_pad);
// The inverse, dropping the padding: dst [out, in, k, k] fp32 from src [out_pad, k, k, in_pad].
void ohwi_to_oihw(float* dst, const void* src, Element e, int64_t out, int64_t in, int64_t k, int64_t out_pad,
                  int64_t in_pad);

void round_to_bf16(uint16_t* dst, const float* src, int64_t n);
// y [rows, cols] += bias[cols] broadcast over rows.
void add_row_bias(float* y, const float* bias, int64_t rows, int64_t cols);

// out[c] = sum_r x[r * cols + c] over x [rows, cols], in double, in an order fixed by the shape
// alone (deterministic run to run). partials: device memory of column_sum_partials(rows, cols)
// doubles.
int64_t column_sum_partials(int64_t rows, int64_t cols);
void column_sums(float* out, const float* x, int64_t rows, int64_t cols, double* partials);

// One workspace shared by every cuDNN convolution and cuBLASLt product: they all run in order on
// the one stream, so no two use it at once. Ops reserve what their chosen algorithms need when
// they are planned (it grows, never shrinks; growing waits for the stream first) and read
// workspace() when they queue work, never keeping the pointer.
void reserve_workspace(size_t bytes);
void* workspace();
size_t workspace_bytes();

}  // namespace ddpm::cuda::detail
