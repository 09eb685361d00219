// The plan of the CUDA per-channel reductions (ops/cuda/channel_reduction.h), checked on the host:
// every value of every channel is walked exactly once, by a block of its own channel and chunk, in
// plain and channels-last data; chunks are whole images; the grid fills the card where there is
// work for it; and the two passes emulated on the host (same plan, same order) equal a serial
// double sum and give the same bits whatever order the blocks run in; the channels-last kernels'
// tiled order gives the plain kernel's partials bit for bit (block_reduce emulated lane by lane).
#include "ops/cuda/channel_reduction.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <cstdint>
#include <random>
#include <thread>
#include <vector>

namespace ruche::ops::gpu {
namespace {

struct Shape {
  std::int64_t images, channels, plane;
};

ChannelData data_of(const Shape& s, bool channels_last) {
  return {s.images, s.channels, s.plane, channels_last};
}
ChannelReductionPlan plan_of(const Shape& s, int sms, int threads, bool channels_last = false) {
  return plan_channel_reduction(data_of(s, channels_last), sms, threads);
}

// (image, channel, p) of the value at offset `at`, decoded independently of ChannelData.
struct Place {
  std::int64_t image, channel, p;
};
Place place_of(const Shape& s, bool channels_last, std::int64_t at) {
  const std::int64_t image = at / (s.channels * s.plane), in_image = at % (s.channels * s.plane);
  if (channels_last) return {image, in_image % s.channels, in_image / s.channels};
  return {image, in_image / s.plane, in_image % s.plane};
}

// The shapes the kernels see: conv and BN planes, linear / 2-D BN (plane 1), huge planes, wide
// layers, planes that do not divide the block, empty tensors.
const Shape kShapes[] = {{1, 1, 1},    {1, 3, 224 * 224}, {4, 3, 224 * 224}, {256, 64, 49},
                         {3, 2048, 5}, {1000, 16, 1},     {37, 5, 1},        {2, 1, 1 << 20},
                         {5, 7, 300},  {513, 1, 3},       {64, 512, 1},      {9, 100, 257},
                         {0, 4, 9},    {4, 0, 9},         {4, 3, 0}};
const int kMultiprocessors[] = {1, 2, 7, 46, 80, 108, 132};
const int kThreadCounts[] = {32, 256, 1024};

// Chunks are consecutive, non-empty runs of whole images that together hold every image.
void expect_chunks_partition_the_images(const ChannelReductionPlan& plan) {
  ASSERT_GE(plan.chunks, 1);
  ASSERT_LE(plan.chunks, 65535) << "CUDA's grid height";
  EXPECT_EQ(plan.first_image(0), 0);
  EXPECT_EQ(plan.end_image(plan.chunks - 1), plan.data.images);
  for (std::int64_t k = 0; k < plan.chunks; ++k) {
    if (plan.data.images > 0) {
      EXPECT_LT(plan.first_image(k), plan.end_image(k)) << "chunk " << k << " is empty";
    }
    if (k > 0) {
      EXPECT_EQ(plan.first_image(k), plan.end_image(k - 1)) << "chunk " << k;
    }
  }
}

TEST(ChannelReductionPlan, EveryValueIsWalkedOnceByItsChannelsBlock) {
  for (const bool channels_last : {false, true}) {
    for (const Shape& s : kShapes) {
      for (int sms : kMultiprocessors) {
        for (int threads : kThreadCounts) {
          const ChannelReductionPlan plan = plan_of(s, sms, threads, channels_last);
          SCOPED_TRACE(::testing::Message()
                       << (channels_last ? "nhwc " : "plain ") << s.images << " x " << s.channels
                       << " x " << s.plane << ", " << sms << " SMs, " << threads
                       << " threads: " << plan.chunks << " chunks");
          // The cut is the shape's alone: the layout only moves where the walk reads.
          EXPECT_EQ(plan.chunks, plan_of(s, sms, threads, !channels_last).chunks);
          expect_chunks_partition_the_images(plan);
          std::vector<std::uint8_t> visits(
              static_cast<std::size_t>(s.images * s.channels * s.plane), 0);
          for (std::int64_t c = 0; c < s.channels; ++c) {
            for (std::int64_t k = 0; k < plan.chunks; ++k) {
              for (int t = 0; t < threads; ++t) {
                for (PlaneWalk w(plan, c, k, t); !w.done(); w.next()) {
                  const std::int64_t at = w.offset();
                  ASSERT_GE(at, 0);
                  ASSERT_LT(at, static_cast<std::int64_t>(visits.size()));
                  const Place place = place_of(s, channels_last, at);
                  ASSERT_EQ(place.channel, c) << "value " << at;
                  ASSERT_GE(place.image, plan.first_image(k)) << "value " << at;
                  ASSERT_LT(place.image, plan.end_image(k)) << "value " << at;
                  ++visits[static_cast<std::size_t>(at)];
                }
              }
            }
          }
          const auto once = std::count(visits.begin(), visits.end(), 1);
          ASSERT_EQ(once, static_cast<std::int64_t>(visits.size())) << "values missed or repeated";
        }
      }
    }
  }
}

// offset, value_offset and channel_of agree with an independent decoding, in both layouts.
TEST(ChannelData, OffsetsAndChannelsMatchTheLayout) {
  for (const bool channels_last : {false, true}) {
    for (const Shape& s : {Shape{2, 3, 5}, Shape{3, 1, 4}, Shape{4, 6, 1}, Shape{1, 16, 49}}) {
      SCOPED_TRACE(::testing::Message() << (channels_last ? "nhwc " : "plain ") << s.images << " x "
                                        << s.channels << " x " << s.plane);
      const ChannelData data = data_of(s, channels_last);
      EXPECT_EQ(data.per_channel(), s.images * s.plane);
      std::vector<std::uint8_t> visits(static_cast<std::size_t>(s.images * s.channels * s.plane),
                                       0);
      for (std::int64_t c = 0; c < s.channels; ++c) {
        for (std::int64_t j = 0; j < data.per_channel(); ++j) {
          const std::int64_t image = j / s.plane, p = j % s.plane;
          const std::int64_t at = data.offset(image, c, p);
          ASSERT_EQ(data.value_offset(c, j), at) << "channel " << c << ", value " << j;
          ASSERT_GE(at, 0);
          ASSERT_LT(at, static_cast<std::int64_t>(visits.size()));
          const Place place = place_of(s, channels_last, at);
          ASSERT_EQ(place.image, image) << "value " << at;
          ASSERT_EQ(place.channel, c) << "value " << at;
          ASSERT_EQ(place.p, p) << "value " << at;
          ASSERT_EQ(data.channel_of(at), c) << "value " << at;
          ++visits[static_cast<std::size_t>(at)];
        }
      }
      EXPECT_EQ(std::count(visits.begin(), visits.end(), 1),
                static_cast<std::int64_t>(visits.size()));
    }
  }
  // The nhwc formula itself: (image * plane + p) * channels + c.
  EXPECT_EQ((ChannelData{2, 3, 5, true}.offset(1, 2, 4)), (1 * 5 + 4) * 3 + 2);
  EXPECT_EQ((ChannelData{2, 3, 5, false}.offset(1, 2, 4)), (1 * 3 + 2) * 5 + 4);
}

TEST(ChannelReductionPlan, FillsTheCardWhereThereIsWork) {
  const std::int64_t channel_counts[] = {1, 2, 3, 16, 64, 100, 256, 528, 1000, 2048};
  const std::int64_t image_counts[] = {1, 2, 4, 10, 32, 256, 4096};
  const std::int64_t planes[] = {1, 49, 3136, 224 * 224, std::int64_t{1} << 31};
  constexpr int threads = 256;
  for (int sms = 1; sms <= 132; ++sms) {
    const std::int64_t target = std::int64_t{sms} * kReductionBlocksPerSm;
    for (std::int64_t channels : channel_counts) {
      const std::int64_t for_card = (target + channels - 1) / channels;
      for (std::int64_t images : image_counts) {
        for (std::int64_t plane : planes) {
          const ChannelReductionPlan plan =
              plan_channel_reduction({images, channels, plane, false}, sms, threads);
          SCOPED_TRACE(::testing::Message() << images << " x " << channels << " x " << plane << ", "
                                            << sms << " SMs: " << plan.chunks << " chunks");
          expect_chunks_partition_the_images(plan);
          const bool enough_work =
              images >= for_card && images * plane >= for_card * threads * kMinValuesPerThread;
          if (enough_work) {
            EXPECT_GE(plan.blocks(), target) << "the card is not filled";
          }
          EXPECT_LE(plan.chunks, 2 * for_card) << "far more blocks than the card needs";
          EXPECT_LE(plan.chunks, images);
          if (plan.chunks > 1) {
            EXPECT_GE(2 * plan.images_per_chunk * plane, threads * kMinValuesPerThread)
                << "chunks too small to be worth a block";
          }
        }
      }
    }
  }
  // A layer as wide as the card's target needs no chunks; one image cannot be split.
  EXPECT_EQ(plan_of({256, 2048, 49}, 132, threads).chunks, 1);
  EXPECT_EQ(plan_of({1, 3, 224 * 224}, 132, threads).chunks, 1);
  // The case: 64 channels on 132 SMs get more than 64 blocks.
  EXPECT_GE(plan_of({256, 64, 49}, 132, threads).blocks(), 132 * 4);
}

TEST(ChannelReductionPlan, RejectsImpossibleArguments) {
  EXPECT_ANY_THROW(plan_of({4, 3, 9}, 0, 256));
  EXPECT_ANY_THROW(plan_of({4, 3, 9}, 8, 0));
  EXPECT_ANY_THROW(plan_of({-1, 3, 9}, 8, 256));
}

// Pass 1 of the kernels on the host: block (c, k) sums its threads' walks (each in double, thread
// by thread in order: the host's stand-in for the block's fixed tree) into partials; the blocks
// run on `workers` threads in the order given. Pass 2: each channel's partials in chunk order.
std::vector<double> emulate_two_passes(const ChannelReductionPlan& plan,
                                       const std::vector<float>& x,
                                       const std::vector<std::int64_t>& block_order, int workers) {
  std::vector<double> partials(static_cast<std::size_t>(plan.blocks()));
  std::atomic<std::size_t> next{0};
  auto run_blocks = [&] {
    for (std::size_t i = next++; i < block_order.size(); i = next++) {
      const std::int64_t channels = plan.data.channels;
      const std::int64_t c = block_order[i] % channels, k = block_order[i] / channels;
      double block_sum = 0.0;
      for (int t = 0; t < plan.threads; ++t) {
        double thread_sum = 0.0;
        for (PlaneWalk w(plan, c, k, t); !w.done(); w.next()) thread_sum += x[w.offset()];
        block_sum += thread_sum;
      }
      partials[static_cast<std::size_t>(partial_index(plan, 0, c, k))] = block_sum;
    }
  };
  std::vector<std::thread> pool;
  pool.reserve(static_cast<std::size_t>(workers));
  for (int i = 0; i < workers; ++i) pool.emplace_back(run_blocks);
  for (std::thread& t : pool) t.join();
  std::vector<double> totals(static_cast<std::size_t>(plan.data.channels), 0.0);
  for (std::int64_t c = 0; c < plan.data.channels; ++c) {
    for (std::int64_t k = 0; k < plan.chunks; ++k) {
      totals[static_cast<std::size_t>(c)] +=
          partials[static_cast<std::size_t>(partial_index(plan, 0, c, k))];
    }
  }
  return totals;
}

TEST(ChannelReductionPlan, TwoPassesEqualASerialSumAndRepeatBitForBit) {
  const Shape shapes[] = {{4, 3, 224 * 224}, {256, 64, 49}, {1000, 16, 1}, {9, 100, 257}};
  std::mt19937 rng(7);
  for (const Shape& s : shapes) {
    // Values around 100 with noise: a sum whose rounding depends on the order.
    std::normal_distribution<float> value(100.0f, 30.0f);
    std::vector<float> x(static_cast<std::size_t>(s.images * s.channels * s.plane));
    for (float& v : x) v = value(rng);
    const ChannelReductionPlan plan = plan_of(s, 132, 256);
    SCOPED_TRACE(::testing::Message() << s.images << " x " << s.channels << " x " << s.plane << ": "
                                      << plan.chunks << " chunks");

    std::vector<std::int64_t> in_order(static_cast<std::size_t>(plan.blocks()));
    for (std::size_t i = 0; i < in_order.size(); ++i) in_order[i] = static_cast<std::int64_t>(i);
    std::vector<std::int64_t> shuffled = in_order;
    std::shuffle(shuffled.begin(), shuffled.end(), rng);
    const std::vector<double> first = emulate_two_passes(plan, x, in_order, 1);
    const std::vector<double> again = emulate_two_passes(plan, x, shuffled, 4);

    // The same logical values stored channels-last: the walk visits them in the same order.
    const ChannelData plain = data_of(s, false), nhwc = data_of(s, true);
    std::vector<float> x_nhwc(x.size());
    for (std::int64_t c = 0; c < s.channels; ++c) {
      for (std::int64_t j = 0; j < plain.per_channel(); ++j) {
        x_nhwc[static_cast<std::size_t>(nhwc.value_offset(c, j))] =
            x[static_cast<std::size_t>(plain.value_offset(c, j))];
      }
    }
    const std::vector<double> channels_last =
        emulate_two_passes(plan_of(s, 132, 256, true), x_nhwc, shuffled, 4);

    for (std::int64_t c = 0; c < s.channels; ++c) {
      double serial = 0.0, magnitude = 0.0;
      for (std::int64_t i = 0; i < s.images; ++i) {
        for (std::int64_t p = 0; p < s.plane; ++p) {
          const float v = x[static_cast<std::size_t>((i * s.channels + c) * s.plane + p)];
          serial += v;
          magnitude += std::fabs(v);
        }
      }
      const auto at = static_cast<std::size_t>(c);
      EXPECT_NEAR(first[at], serial, 1e-12 * magnitude) << "channel " << c;
      EXPECT_EQ(std::bit_cast<std::uint64_t>(first[at]), std::bit_cast<std::uint64_t>(again[at]))
          << "channel " << c << ": the block order changed the bits";
      EXPECT_EQ(std::bit_cast<std::uint64_t>(first[at]),
                std::bit_cast<std::uint64_t>(channels_last[at]))
          << "channel " << c << ": channels-last data summed in another order";
    }
  }
}

// block_reduce (ops/cuda/kernel_util.h) on the host, lane by lane: __shfl_down_sync hands lane k
// lane k + offset's value (its own past lane 31), every lane updating at once; then warp 0 takes
// the warp totals from shared memory, lanes past `warps` holding shared[0], and adds only where
// lane + offset < warps. Returns lane 0's value of thread 0.
double block_reduce_on_host(const std::vector<double>& thread_values) {
  const std::size_t warps = thread_values.size() / 32;
  auto shuffle_tree = [](std::vector<double> lanes, std::size_t limit) {
    for (std::size_t offset = 16; offset > 0; offset /= 2) {
      const std::vector<double> before = lanes;
      for (std::size_t k = 0; k < 32; ++k) {
        const double other = k + offset < 32 ? before[k + offset] : before[k];
        if (k + offset < limit) lanes[k] = before[k] + other;
      }
    }
    return lanes[0];
  };
  std::vector<double> shared(warps);
  for (std::size_t w = 0; w < warps; ++w) {
    std::vector<double> lanes(thread_values.begin() + static_cast<std::ptrdiff_t>(32 * w),
                              thread_values.begin() + static_cast<std::ptrdiff_t>(32 * w + 32));
    shared[w] = shuffle_tree(lanes, 64);  // no mask: every lane adds
  }
  std::vector<double> lanes(32);
  for (std::size_t k = 0; k < 32; ++k) lanes[k] = k < warps ? shared[k] : shared[0];
  return shuffle_tree(lanes, warps);
}

// Two terms per value, as batch norm's statistics: x and x * x.
struct AddValueAndSquare {
  const std::vector<double>* x;
  void operator()(std::int64_t at, std::int64_t /*c*/, double* sums) const {
    const double v = (*x)[static_cast<std::size_t>(at)];
    sums[0] += v;
    sums[1] += v * v;
  }
};
constexpr int kTerms = 2;

// Pass 1 of channel_partials_kernel on plain data: partials[partial_index].
std::vector<double> plain_partials(const ChannelReductionPlan& plan, const std::vector<double>& x) {
  std::vector<double> partials(static_cast<std::size_t>(kTerms * plan.blocks()));
  const AddValueAndSquare add{&x};
  for (std::int64_t c = 0; c < plan.data.channels; ++c) {
    for (std::int64_t k = 0; k < plan.chunks; ++k) {
      std::vector<std::vector<double>> threads(kTerms, std::vector<double>(plan.threads));
      for (int t = 0; t < plan.threads; ++t) {
        double sums[kTerms] = {};
        for (PlaneWalk w(plan, c, k, t); !w.done(); w.next()) add(w.offset(), c, sums);
        for (int term = 0; term < kTerms; ++term) threads[term][t] = sums[term];
      }
      for (int term = 0; term < kTerms; ++term) {
        partials[static_cast<std::size_t>(partial_index(plan, term, c, k))] =
            block_reduce_on_host(threads[term]);
      }
    }
  }
  return partials;
}

// Pass 1 of tiled_warp_totals_kernel + warp_partials_kernel on channels-last data.
std::vector<double> tiled_partials(const ChannelReductionPlan& plan, const std::vector<double>& x) {
  const std::int64_t channels = plan.data.channels;
  const int warps = plan.threads / 32;
  std::vector<double> warp_totals(static_cast<std::size_t>(kTerms * plan.blocks() * warps));
  const AddValueAndSquare add{&x};
  for (std::int64_t tile = 0; tile * kTileChannels < channels; ++tile) {
    for (std::int64_t k = 0; k < plan.chunks; ++k) {
      for (int warp = 0; warp < warps; ++warp) {
        for (std::int64_t c = tile * kTileChannels;
             c < std::min(channels, (tile + 1) * kTileChannels); ++c) {
          double groups[kTerms][kLaneGroups];
          for (int group = 0; group < kLaneGroups; ++group) {
            double sums[kTerms] = {};
            tiled_lane_group_sums<kTerms>(plan, c, k, warp, group, add, sums);
            for (int term = 0; term < kTerms; ++term) groups[term][group] = sums[term];
          }
          for (int term = 0; term < kTerms; ++term) {
            warp_totals[static_cast<std::size_t>(partial_index(plan, term, c, k) * warps + warp)] =
                warp_tree(groups[term], kLaneGroups);
          }
        }
      }
    }
  }
  std::vector<double> partials(static_cast<std::size_t>(kTerms * plan.blocks()));
  for (std::size_t i = 0; i < partials.size(); ++i) {
    std::vector<double> v(warp_totals.begin() + static_cast<std::ptrdiff_t>(i * warps),
                          warp_totals.begin() + static_cast<std::ptrdiff_t>((i + 1) * warps));
    partials[i] = warp_totals_tree(v.data(), warps);
  }
  return partials;
}

// The channels-last kernels' tiled order gives the plain kernel's partials bit for bit: values of
// magnitudes 2^-20 to 2^20 and both signs, so that any other order of the additions would show.
TEST(ChannelReductionTiled, ChannelsLastPartialsEqualPlainBitForBit) {
  struct Case {
    Shape shape;
    int sms, threads;
  };
  const Case cases[] = {
      {{96, 40, 49}, 132, 256},   // C not a multiple of 32, 4 chunks
      {{1000, 5, 17}, 132, 256},  // C < 32, 16 chunks
      {{5000, 36, 1}, 132, 256},  // plane 1, chunks of 1250 images
      {{512, 1, 1}, 132, 256},    // one channel, two values for some threads
      {{7, 64, 3}, 132, 256},     // fewer values than threads
      {{2, 70, 1000}, 132, 256},  // few images, many values per thread
      {{1, 33, 5000}, 1, 256},    // one image, one chunk
      {{64, 32, 49}, 7, 256},     // a whole tile
      {{300, 3, 10}, 132, 1024},  // other block sizes: the helpers follow plan.threads
      {{300, 45, 7}, 132, 64},   {{3, 2, 0}, 132, 256},  // no values: partials 0
  };
  std::mt19937 rng(11);
  std::uniform_real_distribution<double> mantissa(-1.0, 1.0);
  std::uniform_int_distribution<int> exponent(-20, 20);
  for (const Case& k : cases) {
    const Shape& s = k.shape;
    const ChannelReductionPlan plain = plan_of(s, k.sms, k.threads, false);
    const ChannelReductionPlan nhwc = plan_of(s, k.sms, k.threads, true);
    SCOPED_TRACE(::testing::Message() << s.images << " x " << s.channels << " x " << s.plane << ", "
                                      << k.threads << " threads: " << plain.chunks << " chunks");
    std::vector<double> x(static_cast<std::size_t>(s.images * s.channels * s.plane));
    for (double& v : x) v = std::ldexp(mantissa(rng), exponent(rng));
    std::vector<double> x_nhwc(x.size());
    for (std::int64_t c = 0; c < s.channels; ++c) {
      for (std::int64_t j = 0; j < plain.data.per_channel(); ++j) {
        x_nhwc[static_cast<std::size_t>(nhwc.data.value_offset(c, j))] =
            x[static_cast<std::size_t>(plain.data.value_offset(c, j))];
      }
    }
    const std::vector<double> expected = plain_partials(plain, x);
    const std::vector<double> tiled = tiled_partials(nhwc, x_nhwc);
    ASSERT_EQ(tiled.size(), expected.size());
    for (std::size_t i = 0; i < expected.size(); ++i) {
      ASSERT_EQ(std::bit_cast<std::uint64_t>(tiled[i]), std::bit_cast<std::uint64_t>(expected[i]))
          << "partial " << i << ": " << tiled[i] << " vs " << expected[i];
    }
  }
}

// The data above does tell orders apart: the plain walk with its threads added in turn instead of
// by block_reduce's tree changes some partial's bits.
TEST(ChannelReductionTiled, TheTestDataTellsOrdersApart) {
  std::mt19937 rng(11);
  std::uniform_real_distribution<double> mantissa(-1.0, 1.0);
  std::uniform_int_distribution<int> exponent(-20, 20);
  const ChannelReductionPlan plan = plan_of({96, 40, 49}, 132, 256);
  std::vector<double> x(static_cast<std::size_t>(plan.data.numel()));
  for (double& v : x) v = std::ldexp(mantissa(rng), exponent(rng));
  const std::vector<double> tree = plain_partials(plan, x);
  int differing = 0;
  for (std::int64_t c = 0; c < plan.data.channels; ++c) {
    for (std::int64_t k = 0; k < plan.chunks; ++k) {
      double in_turn = 0.0;
      for (int t = 0; t < plan.threads; ++t) {
        double thread_sum = 0.0;
        for (PlaneWalk w(plan, c, k, t); !w.done(); w.next()) {
          thread_sum += x[static_cast<std::size_t>(w.offset())];
        }
        in_turn += thread_sum;
      }
      if (in_turn != tree[static_cast<std::size_t>(partial_index(plan, 0, c, k))]) ++differing;
    }
  }
  EXPECT_GT(differing, plan.blocks() / 2);
}

}  // namespace
}  // namespace ruche::ops::gpu
