// How a tensor's elements lie in memory. Every tensor a user sees (npz, ONNX, `ruche time`, the
// net's outputs) and every op by default is plain: row-major, NCHW for images. The CPU net
// planner (engine/graph/layout_plan.h) keeps convolution chains in oneDNN's blocked layouts,
// which only the ops listed in ops/op_table.h's RUCHE_OPS_TAKING_BLOCKED read and write.
#pragma once

#include <cstdint>
#include <string_view>

namespace ruche {

// nChw8c / nChw16c (oneDNN's aBcd8b / aBcd16b): a 4-d [N, C, H, W] tensor stored as
// [N][C / b][H][W][b], b channels innermost. Here C is always a multiple of b (no padded
// channels), so a blocked tensor has the same element count and bytes as a plain one.
enum class Layout : std::uint8_t { plain, nChw8c, nChw16c };

constexpr int layout_block(Layout layout) {
  switch (layout) {
    case Layout::plain:
      return 1;
    case Layout::nChw8c:
      return 8;
    case Layout::nChw16c:
      return 16;
  }
  return 1;
}

constexpr std::string_view layout_name(Layout layout) {
  switch (layout) {
    case Layout::plain:
      return "plain";
    case Layout::nChw8c:
      return "nChw8c";
    case Layout::nChw16c:
      return "nChw16c";
  }
  return "?";
}

}  // namespace ruche
