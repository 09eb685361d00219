// BatchRing on its own: batches come out in order whatever the threads and depth, with the fill's
// row counts and sample numbers, from a start in the middle, and a fill's error reaches next().
#include "engine/data/batch_ring.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <tuple>
#include <utility>

#include "engine/error.h"

namespace ruche {
namespace {

// Batch b of 10 rows over 95 samples: each row holds sample b * 10 + j (x) and its parity (y).
std::int64_t fill_numbers(std::int64_t batch, BatchRing::Rows& rows) {
  const std::int64_t count = std::min<std::int64_t>(10, 95 - batch * 10);
  rows.samples.resize(static_cast<std::size_t>(count));
  for (std::int64_t j = 0; j < count; ++j) {
    const std::int64_t sample = batch * 10 + j;
    for (int k = 0; k < 3; ++k) rows.x.data<float>()[j * 3 + k] = static_cast<float>(sample);
    rows.y.data<std::int32_t>()[j] = static_cast<std::int32_t>(sample % 2);
    rows.samples[static_cast<std::size_t>(j)] = sample;
  }
  return count;
}

TEST(BatchRing, BatchesInOrderWithAnyThreadsAndDepth) {
  for (const auto& [thread_count, depth] : {std::pair{1, 0}, {3, 2}, {4, 7}}) {
    const int threads = thread_count;  // a variable, not a binding: clang 14 captures no bindings
    std::atomic<int> bad_thread{0};
    BatchRing ring(Shape{10, 3}, DType::f32, threads, depth, Device::cpu(),
                   [&](std::int64_t batch, int thread, BatchRing::Rows& rows) {
                     if (thread < 0 || thread >= threads) ++bad_thread;
                     return fill_numbers(batch, rows);
                   });
    Tensor x = Tensor::zeros({10, 3});
    Tensor y = Tensor::zeros({10}, DType::i32);
    std::vector<std::int64_t> samples;
    ring.start(3, 10);  // from batch 3: a resume mid-epoch
    std::int64_t expected = 30;
    for (std::int64_t b = 3; b < 10; ++b) {
      EXPECT_EQ(ring.next_batch(), b);
      const std::int64_t n = ring.next(x, y, &samples);
      ASSERT_EQ(n, b == 9 ? 5 : 10) << "threads " << threads << " batch " << b;
      ASSERT_EQ(samples.size(), static_cast<std::size_t>(n));
      for (std::int64_t j = 0; j < n; ++j, ++expected) {
        EXPECT_EQ(samples[static_cast<std::size_t>(j)], expected);
        EXPECT_EQ(x.data<float>()[j * 3 + 2], static_cast<float>(expected));
        EXPECT_EQ(y.data<std::int32_t>()[j], expected % 2);
      }
    }
    EXPECT_EQ(ring.next(x, y), 0);
    EXPECT_EQ(ring.next_batch(), 10);
    EXPECT_EQ(bad_thread.load(), 0);
  }
}

// Staging slots (a CUDA ring's device copies of x and y; asked for on the CPU here) are fewer than
// the host slots and reused by batch number: a producer must not copy batch b into its staging slot
// before next() has taken batch b - staging. Producers finish out of order (fills of uneven
// length) and the consumer is slow, so a copy that did not wait would overwrite a batch not yet
// taken and next() would return another batch's values.
TEST(BatchRing, StagingSlotsAreReusedOnlyAfterTheirBatchIsTaken) {
  for (const auto& [thread_count, depth, staging] :
       {std::tuple{8, 0, 1}, {8, 9, 2}, {4, 0, 3}, {3, 2, 3}, {1, 0, 2}}) {
    const int threads = thread_count;
    BatchRing ring(
        Shape{10, 3}, DType::f32, threads, depth, Device::cpu(),
        [&](std::int64_t batch, int, BatchRing::Rows& rows) {
          std::this_thread::sleep_for(std::chrono::microseconds(batch % 3 == 0 ? 2000 : 100));
          return fill_numbers(batch, rows);
        },
        {}, staging);
    Tensor x = Tensor::zeros({10, 3});
    Tensor y = Tensor::zeros({10}, DType::i32);
    ring.start(0, 10);
    for (std::int64_t b = 0; b < 10; ++b) {
      const std::int64_t n = ring.next(x, y);
      ASSERT_EQ(n, b == 9 ? 5 : 10);
      for (std::int64_t j = 0; j < n; ++j) {
        ASSERT_EQ(x.data<float>()[j * 3 + 2], static_cast<float>(b * 10 + j))
            << "threads " << threads << " staging " << staging << " batch " << b;
        ASSERT_EQ(y.data<std::int32_t>()[j], (b * 10 + j) % 2) << "labels, batch " << b;
      }
      if (b % 3 == 1) std::this_thread::sleep_for(std::chrono::milliseconds(3));
    }
    EXPECT_EQ(ring.next(x, y), 0);
  }
}

TEST(BatchRing, AFillErrorIsRethrownByNextAndARestartClearsIt) {
  std::atomic<bool> fail{true};
  BatchRing ring(Shape{10, 3}, DType::f32, 2, 0, Device::cpu(),
                 [&](std::int64_t batch, int, BatchRing::Rows& rows) -> std::int64_t {
                   RUCHE_REQUIRE(!(fail && batch == 2)) << "batch 2 is unreadable";
                   return fill_numbers(batch, rows);
                 });
  Tensor x = Tensor::zeros({10, 3});
  Tensor y = Tensor::zeros({10}, DType::i32);
  ring.start(0, 5);
  // The error may overtake batches 0 and 1 (it is rethrown as soon as it happens), never batch 2.
  bool threw = false;
  for (int b = 0; b < 3 && !threw; ++b) {
    try {
      EXPECT_EQ(ring.next(x, y), 10);
    } catch (const Error& e) {
      threw = true;
      EXPECT_NE(std::string(e.what()).find("batch 2 is unreadable"), std::string::npos);
    }
  }
  EXPECT_TRUE(threw);
  ring.stop();
  fail = false;
  ring.start(0, 5);
  for (int b = 0; b < 5; ++b) EXPECT_EQ(ring.next(x, y), 10);
  EXPECT_EQ(ring.next(x, y), 0);
}

TEST(BatchRing, NextChecksTheTensorsAndTheStart) {
  BatchRing ring(
      Shape{10, 3}, DType::f32, 1, 0, Device::cpu(),
      [](std::int64_t batch, int, BatchRing::Rows& rows) { return fill_numbers(batch, rows); });
  Tensor x = Tensor::zeros({10, 3});
  Tensor y = Tensor::zeros({10}, DType::i32);
  EXPECT_ANY_THROW(ring.next(x, y));  // before start
  ring.start(0, 2);
  Tensor wrong = Tensor::zeros({10, 4});
  EXPECT_ANY_THROW(ring.next(wrong, y));
  EXPECT_EQ(ring.next(x, y), 10);
}

}  // namespace
}  // namespace ruche
