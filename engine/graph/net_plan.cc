// The net's two plans, made once when the net is built (docs/ARCHITECTURE.md "Layouts and the
// memory plan"). The layout plan (CPU nets, and 16-bit CUDA nets) keeps activations in the
// device's convolution layout (oneDNN's blocked one, or nhwc) from a convolution through the
// layers that take it, and gives a layer that must read another layout a shadow of the blob in
// it, reordered after its producer's forward (and its gradient back after the readers'
// backward). The memory plan (CPU nets) puts every activation and gradient in one arena,
// gradients whose lives do not overlap in the same bytes.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <map>

#include "engine/graph/net.h"
#include "engine/tensor/allocator.h"
#include "ops/ops.h"

namespace ruche {
namespace {

bool is_loss_layer(const std::string& type) {
  return type.size() > 4 && type.compare(type.size() - 4, 4, "Loss") == 0;
}

int env_int(const char* name, int fallback) {
  const char* value = std::getenv(name);
  return value ? std::atoi(value) : fallback;
}

}  // namespace

Layout Net::layout_to_plan() const {
  // RUCHE_LAYOUT_PLAN=0 keeps every blob plain (the memory plan stays): to tell the two apart.
  if (env_int("RUCHE_LAYOUT_PLAN", 1) == 0) return Layout::plain;
  if (options_.device.is_cpu() && ops::cpu_reference_path()) return Layout::plain;
  return options_.layout.value_or(ops::planned_layout(options_.device, options_.compute_dtype));
}

void Net::plan_layouts(std::vector<std::vector<int>>& bottoms,
                       const std::vector<std::vector<int>>& tops) {
  const Layout target = layout_to_plan();
  if (target == Layout::plain) return;
  planned_layout_ = target;
  // oneDNN's convolutions read a plain input into blocks (its first-layer kernels); cuDNN's NHWC
  // ones want NHWC in too, so in an nhwc plan a convolution reads its input reordered, as
  // PyTorch's channels_last models are fed.
  const bool blocks_read_plain = target != Layout::nhwc;
  const auto use_of = [&](std::size_t li) {
    const bool sync_bn = options_.sync_bn && layers_[li]->type() == "BatchNorm";
    return sync_bn ? Layer::LayoutUse::plain : layers_[li]->layout_use();
  };
  const std::size_t n = blobs_.size();
  // Versions written in place share one storage, hence one layout: their chain's root decides.
  std::vector<int> root(n);
  for (std::size_t b = 0; b < n; ++b) {
    const int prev = blobs_[b].in_place_of;
    root[b] = prev >= 0 ? root[static_cast<std::size_t>(prev)] : static_cast<int>(b);
  }
  // Chains a plain layer writes in place, and what users read (the input, the labels, losses, a
  // deploy net's output), stay plain.
  std::vector<bool> plain_chain(n, false);
  for (std::size_t li = 0; li < layers_.size(); ++li) {
    const bool plain_layer = use_of(li) == Layer::LayoutUse::plain;
    const bool user_visible =
        li == 0 || li + 1 == layers_.size() || is_loss_layer(layers_[li]->type());
    for (int t : tops[li]) {
      const auto b = static_cast<std::size_t>(t);
      if (user_visible || (plain_layer && blobs_[b].in_place_of >= 0)) {
        plain_chain[static_cast<std::size_t>(root[b])] = true;
      }
    }
  }
  std::vector<Layout> layout(n, Layout::plain);
  std::vector<Layout> wanted(layers_.size(), Layout::plain);  // what a layer reads
  for (std::size_t li = 1; li < layers_.size(); ++li) {
    const Layer::LayoutUse use = use_of(li);
    Layout out = use == Layer::LayoutUse::blocks ? target : Layout::plain;
    if (use == Layer::LayoutUse::follows && !bottoms[li].empty()) {
      out = layout[static_cast<std::size_t>(bottoms[li][0])];
      for (int b : bottoms[li]) {
        if (layout[static_cast<std::size_t>(b)] != out) out = Layout::plain;
      }
    }
    for (int t : tops[li]) {
      const Tensor& data = blobs_[static_cast<std::size_t>(t)].data;
      const bool fits = data.ndim() == 4 && data.dtype() == options_.compute_dtype &&
                        layout_fits(target, data.size(1)) &&
                        !plain_chain[static_cast<std::size_t>(root[static_cast<std::size_t>(t)])];
      if (!fits) out = Layout::plain;
    }
    for (int t : tops[li]) layout[static_cast<std::size_t>(t)] = out;
    wanted[li] = out;
  }
  for (std::size_t b = 0; b < n; ++b) blobs_[b].data = blobs_[b].data.with_layout(layout[b]);

  // A shadow of each blob in the layout a reader must read, shared by all such readers: plain for
  // the layers that take no other, the plan's layout for an nhwc plan's convolutions.
  std::map<std::pair<int, Layout>, int> shadow_of_blob;
  for (std::size_t li = 1; li < layers_.size(); ++li) {
    if (use_of(li) == Layer::LayoutUse::blocks && blocks_read_plain) continue;
    for (int& b : bottoms[li]) {
      if (layout[static_cast<std::size_t>(b)] == wanted[li]) continue;
      auto it = shadow_of_blob.find({b, wanted[li]});
      if (it == shadow_of_blob.end()) {
        const Blob& source = blobs_[static_cast<std::size_t>(b)];
        Blob shadow;
        shadow.name = source.name;
        shadow.producer = source.producer;
        shadow.shadow_of = b;
        shadow.data = Tensor::empty(source.data.shape(), source.data.dtype(), options_.device)
                          .with_layout(wanted[li]);
        after_forward_[static_cast<std::size_t>(source.producer)].push_back(
            {source.data, shadow.data, {}});
        blobs_.push_back(std::move(shadow));
        it = shadow_of_blob.emplace(std::pair{b, wanted[li]}, static_cast<int>(blobs_.size()) - 1)
                 .first;
      }
      auto& readers = blobs_[static_cast<std::size_t>(b)].consumers;
      readers.erase(std::find(readers.begin(), readers.end(), static_cast<int>(li)));
      blobs_[static_cast<std::size_t>(it->second)].consumers.push_back(static_cast<int>(li));
      b = it->second;
    }
  }
}

void Net::connect_shadow_gradients() {
  for (std::size_t s = 0; s < blobs_.size(); ++s) {
    Blob& shadow = blobs_[s];
    if (shadow.shadow_of < 0 || !shadow.diff.defined() || shadow.consumers.empty()) continue;
    // After the backward of its first reader, the last of them to run, every reader has written.
    const int reader = shadow.consumers.front();
    after_backward_[static_cast<std::size_t>(reader)].push_back(
        {shadow.diff, gradient_for_reader(shadow.shadow_of, reader), shadow.extra_diffs});
  }
}

Tensor Net::gradient_for_reader(int b, int reader) {
  Blob& blob = blobs_[static_cast<std::size_t>(b)];
  int last = blob.consumers.empty() ? -1 : blob.consumers.back();
  for (const Blob& shadow : blobs_) {
    if (shadow.shadow_of == b && !shadow.consumers.empty()) {
      last = std::max(last, shadow.consumers.front());
    }
  }
  // The last reader in forward order runs first in backward and writes the blob's gradient.
  if (reader == last) return blob.diff;
  Tensor diff = planned_ ? Tensor::empty(blob.diff.shape(), blob.diff.dtype(), options_.device)
                         : Tensor::zeros(blob.diff.shape(), blob.diff.dtype(), options_.device);
  diff = diff.with_layout(blob.diff.layout());
  blob.extra_diffs.push_back(diff);
  return diff;
}

void Net::plan_memory() {
  // Times: layer l's forward at l, its backward at 2L - 1 - l; kEnd is after the step, where the
  // trainer, Net::blob() and the NaN diagnosis read.
  const int layers = static_cast<int>(layers_.size());
  const int end = 2 * layers;
  std::map<Storage*, std::size_t> index;
  std::vector<std::shared_ptr<Storage>> storages;
  std::vector<BufferLife> lives;
  std::vector<bool> pinned;
  const auto use = [&](const Tensor& t, int time, bool pin) {
    if (!t.defined()) return;
    auto [it, added] = index.emplace(t.storage().get(), storages.size());
    if (added) {
      storages.push_back(t.storage());
      lives.push_back({t.storage()->bytes(), time, time});
      pinned.push_back(false);
    }
    BufferLife& life = lives[it->second];
    life.first = std::min(life.first, time);
    life.last = std::max(life.last, pin ? end : time);
    if (pin) pinned[it->second] = true;
  };
  // Activations live from their producer's forward to the step's end (backward reads them, and
  // so may anyone after the step); gradients from their first to their last use in backward.
  for (int li = 0; li < layers; ++li) {
    const LayerIO& io = io_[static_cast<std::size_t>(li)];
    const int forward = li, backward = end - 1 - li;
    for (const Tensor& t : io.bottom) use(t, forward, true);
    for (const Tensor& t : io.top) use(t, forward, true);
    for (const Tensor& t : io.bottom_diff) use(t, backward, false);
    for (const Tensor& t : io.top_diff) use(t, backward, false);
    for (int t : tops_[static_cast<std::size_t>(li)]) {
      for (const Tensor& extra : blobs_[static_cast<std::size_t>(t)].extra_diffs) {
        use(extra, backward, false);
      }
    }
    for (const Reorder& r : after_forward_[static_cast<std::size_t>(li)]) use(r.y, forward, true);
    for (const Reorder& r : after_backward_[static_cast<std::size_t>(li)]) {
      use(r.x, backward, false);
      use(r.y, backward, false);
      for (const Tensor& t : r.add) use(t, backward, false);
    }
  }
  for (const Tensor* t : {&input_, &labels_, &output_, &loss_}) use(*t, 0, true);
  for (const LossTerm& term : losses_) use(term.value, 0, true);
  use(input_grad(), 0, true);

  // A test of the plan: one gradient's life cut to its first use, as a wrong plan would.
  if (const int cut = env_int("RUCHE_MEMORY_PLAN_SHORTEN", 0); cut > 0) {
    int seen = 0;
    for (std::size_t i = 0; i < lives.size(); ++i) {
      if (!pinned[i] && ++seen == cut) lives[i].last = lives[i].first;
    }
  }
  memory_plan_ = ruche::plan_memory(lives);
  auto arena = Storage::allocate(std::max<std::size_t>(memory_plan_.peak, 1), options_.device);
  zero_bytes(arena->data(), options_.device, memory_plan_.peak);
  for (std::size_t i = 0; i < storages.size(); ++i) {
    storages[i]->move_into(arena, memory_plan_.offsets[i]);
  }
  if (env_int("RUCHE_MEMORY_PLAN_POISON", 0) == 1) {
    poison_at_.assign(static_cast<std::size_t>(end) + 1, {});
    for (std::size_t i = 0; i < storages.size(); ++i) {
      if (pinned[i] || lives[i].bytes < sizeof(float)) continue;
      const auto floats = static_cast<std::int64_t>(lives[i].bytes / sizeof(float));
      poison_at_[static_cast<std::size_t>(lives[i].last)].push_back(
          Tensor::view_of(storages[i], 0, {floats}, DType::f32));
    }
  }
}

void Net::after_layer(std::size_t li, bool backward) {
  for (Reorder& r : (backward ? after_backward_ : after_forward_)[li]) {
    for (const Tensor& g : r.add) ops::axpy(1.0f, g, r.x);
    ops::reorder(r.x, r.y);
  }
  if (poison_at_.empty()) return;
  const std::size_t time = backward ? 2 * layers_.size() - 1 - li : li;
  for (Tensor& t : poison_at_[time]) t.fill(std::numeric_limits<float>::quiet_NaN());
}

int Net::blocked_blobs() const {
  int count = 0;
  for (const Blob& b : blobs_) count += b.data.is_plain() ? 0 : 1;
  return count;
}

int Net::planned_reorders() const {
  int count = 0;
  for (const auto& hooks : after_forward_) count += static_cast<int>(hooks.size());
  return count;
}

}  // namespace ruche
