// Planning helpers shared by the U-Net's blocks: the parameter table, planned buffers, and the
// parameter-owning wrappers around the conv, linear and group-norm ops.
#include "nn/blocks.h"

#include <algorithm>

namespace ddpm::nn {

int64_t Planner::param(const std::string& name, Shape shape) {
  const int64_t at = total_;
  table_.push_back(ParamInfo{name, shape, at});
  total_ += shape.numel();
  return at;
}

void Planner::buffer(Buf& b, int64_t numel) {
  b.numel = numel;
  largest_ = std::max(largest_, numel);
  b.slot = arena_.reserve({numel});
  bufs_.push_back(&b);
}

void Planner::shared(Buf& b, int64_t numel, Pool pool) {
  if (!overlay_) return buffer(b, numel);
  b.numel = numel;
  largest_ = std::max(largest_, numel);
  const auto k = static_cast<size_t>(pool);
  if (pool != Pool::block_internal) pool_used_[k] = 0;  // one occupant at a time
  constexpr size_t kAlignFloats = 16;                // 64 bytes
  overlaid_.push_back({&b, pool, pool_used_[k]});
  pool_used_[k] += (static_cast<size_t>(numel) + kAlignFloats - 1) / kAlignFloats * kAlignFloats;
  pool_size_[k] = std::max(pool_size_[k], pool_used_[k]);
}

void Planner::next_block() { pool_used_[static_cast<size_t>(Pool::block_internal)] = 0; }

void Planner::allocate() {
  Arena::Slot pool_slot[kPools] = {};
  for (size_t k = 0; k < kPools; ++k)
    if (pool_size_[k] > 0) pool_slot[k] = arena_.reserve({static_cast<int64_t>(pool_size_[k])});
  arena_.allocate(device_);
  for (Buf* b : bufs_) b->p = arena_.tensor(b->slot).f32();
  for (const Overlaid& o : overlaid_) {
    const auto k = static_cast<size_t>(o.pool);
    o.buf->p = arena_.tensor(pool_slot[k]).f32() + o.offset;
  }
}

Norm::Norm(Planner& pl, const std::string& prefix, int64_t batch, int64_t pixels, int64_t channels, int64_t groups,
           float eps)
    : weight(pl.param(prefix + ".weight", {channels})),
      bias(pl.param(prefix + ".bias", {channels})),
      shape{batch, pixels, channels, groups, eps} {
  pl.group_norm_workspace = std::max(pl.group_norm_workspace, cpu::group_norm_workspace_floats(shape));
}

void Norm::reserve_stats(Planner& pl) {
  pl.buffer(mean, shape.batch * shape.groups);
  pl.buffer(rstd, shape.batch * shape.groups);
}

Conv::Conv(Planner& pl, const std::string& prefix, const cpu::Conv2dShape& s, Precision precision)
    : op(dev::ConvOp::make(pl.device(), s, precision, pl.training())),
      weight(pl.param(prefix + ".weight", {s.out_channels, s.in_channels, s.kernel, s.kernel})),
      bias(pl.param(prefix + ".bias", {s.out_channels})) {}

Lin::Lin(Planner& pl, const std::string& prefix, int64_t rows, int64_t in, int64_t out, Precision precision)
    : op(dev::LinearOp::make(pl.device(), rows, in, out, precision)),
      weight(pl.param(prefix + ".weight", {out, in})),
      bias(pl.param(prefix + ".bias", {out})) {}

}  // namespace ddpm::nn
