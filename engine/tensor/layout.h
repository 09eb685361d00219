// How a tensor's elements lie in memory. Every tensor a user sees (npz, ONNX, `ruche time`, the
// net's outputs) and every op by default is plain: row-major, NCHW for images. The net's layout
// plan (engine/graph/net_plan.cc) keeps convolution chains in the layout the device's
// convolutions prefer: oneDNN's blocked ones on a CPU, channels-last for 16-bit autocast on a
// GPU. Only the ops listed in ops/op_table.h's RUCHE_OPS_TAKING_BLOCKED read and write them.
#pragma once

#include <cstdint>
#include <string_view>

namespace ruche {

// nChw8c / nChw16c (oneDNN's aBcd8b / aBcd16b): a 4-d [N, C, H, W] tensor stored as
// [N][C / b][H][W][b], b channels innermost. Here C is always a multiple of b (no padded
// channels), so a blocked tensor has the same element count and bytes as a plain one.
// nhwc (PyTorch's channels_last, cuDNN's CUDNN_TENSOR_NHWC, oneDNN's acdb): [N][H][W][C], the
// same form with one block of all C channels. A 4-d weight [O, I, KH, KW] in nhwc is stored
// [O][KH][KW][I], cuDNN's NHWC filter.
enum class Layout : std::uint8_t { plain, nChw8c, nChw16c, nhwc };

// The channels of one block, innermost in memory: 1 for plain, 8 or 16, or all `channels` (nhwc).
constexpr std::int64_t channel_block(Layout layout, std::int64_t channels) {
  switch (layout) {
    case Layout::plain:
      return 1;
    case Layout::nChw8c:
      return 8;
    case Layout::nChw16c:
      return 16;
    case Layout::nhwc:
      return channels;
  }
  return 1;
}

// Whether a [N, channels, H, W] tensor can be stored in `layout` (blocks fill the channels).
constexpr bool layout_fits(Layout layout, std::int64_t channels) {
  const std::int64_t block = channel_block(layout, channels);
  return block > 0 && channels % block == 0;
}

constexpr std::string_view layout_name(Layout layout) {
  switch (layout) {
    case Layout::plain:
      return "plain";
    case Layout::nChw8c:
      return "nChw8c";
    case Layout::nChw16c:
      return "nChw16c";
    case Layout::nhwc:
      return "nhwc";
  }
  return "?";
}

}  // namespace ruche
