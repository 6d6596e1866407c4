// Softmax cross-entropy of class logits with integer labels (torch.nn.functional.cross_entropy,
// reduction "mean"): the classifier's training loss.
#pragma once

#include <cstdint>

namespace ddpm::cpu {

// mean over rows r of  logsumexp(logits[r, :]) - logits[r, labels[r]],  logits [batch, classes].
// Each row is shifted by its max before exp (no overflow for any finite logits) and the sums are
// taken in double, in row order, so the result does not depend on the thread count. When
// `probabilities` is not null it receives softmax(logits) [batch, classes] (what the backward needs);
// it may alias logits. Throws std::invalid_argument for non-positive sizes or a label outside
// [0, classes), naming the row.
double cross_entropy_forward(const float* logits, const int32_t* labels, int64_t batch, int64_t classes,
                             float* probabilities = nullptr);

// dlogits = scale * (probabilities - onehot(labels)) / batch, with probabilities from the forward;
// scale is dL/d(loss) (1 when the cross-entropy is the whole loss). dlogits may alias
// probabilities. Throws std::invalid_argument like the forward.
void cross_entropy_backward(float* dlogits, const float* probabilities, const int32_t* labels, int64_t batch,
                            int64_t classes, float scale = 1.0f);

}  // namespace ddpm::cpu
