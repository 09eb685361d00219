// Readback on the CPU (engine/tensor/readback.h): each fetch copies every source's current value,
// the host copies hold them until the next fetch, and a source on another device or not
// contiguous is refused. (The CUDA side, one wait for all, is in tests/gpu/step_tallies_test.cc.)
#include <gtest/gtest.h>

#include <vector>

#include "engine/tensor/readback.h"
#include "engine/error.h"

namespace ruche {
namespace {

TEST(Readback, FetchCopiesEverySourceAsItIsThen) {
  Tensor record = Tensor::zeros({6});
  Tensor flags = Tensor::zeros({2}, DType::i64);
  Readback readback(Device::cpu());
  const int record_at = readback.add(record.narrow(0, 2, 3));
  const int flags_at = readback.add(flags);
  record.data<float>()[2] = 1.5f;
  flags.data<std::int64_t>()[1] = -7;
  readback.fetch();
  record.data<float>()[3] = 9.0f;  // after the fetch: not seen until the next one
  EXPECT_EQ(readback.host(record_at).to_vector<float>(), (std::vector<float>{1.5f, 0, 0}));
  EXPECT_EQ(readback.host(flags_at).to_vector<std::int64_t>(), (std::vector<std::int64_t>{0, -7}));
  readback.fetch();
  EXPECT_EQ(readback.host(record_at).to_vector<float>(), (std::vector<float>{1.5f, 9.0f, 0}));
}

TEST(Readback, RefusesWhatItCannotCopy) {
  Readback readback(Device::cpu());
  Tensor grid = Tensor::zeros({4, 4});
  // A caller's bug, not the user's: InternalError.
  EXPECT_THROW(readback.add(grid.narrow(1, 0, 2)), InternalError);
  EXPECT_THROW(readback.add(Tensor()), InternalError);
  EXPECT_THROW((void)readback.host(0), InternalError);
}

}  // namespace
}  // namespace ruche
