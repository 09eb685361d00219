#include "engine/checkpoint/crc32c.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "engine/checkpoint/checkpoint.h"

namespace ruche {
namespace {

using namespace checkpoint_crc;

std::uint32_t crc_of(const std::string& s) { return crc32c(s.data(), s.size()); }

TEST(Crc32c, KnownVectors) {
  EXPECT_EQ(crc_of(""), 0x00000000u);
  EXPECT_EQ(crc_of("a"), 0xC1D04330u);
  EXPECT_EQ(crc_of("123456789"), 0xE3069283u);
  EXPECT_EQ(crc_of("The quick brown fox jumps over the lazy dog"), 0x22620404u);
  // RFC 3720 (iSCSI) B.4: 32 bytes of zeros, of ones, ascending.
  std::vector<std::uint8_t> zeros(32, 0), ones(32, 0xFF), up(32);
  for (int i = 0; i < 32; ++i) up[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(i);
  EXPECT_EQ(crc32c(zeros.data(), 32), 0x8A9136AAu);
  EXPECT_EQ(crc32c(ones.data(), 32), 0x62A8AB43u);
  EXPECT_EQ(crc32c(up.data(), 32), 0x46DD794Eu);
}

TEST(Crc32c, TableKnownVectorWhateverTheCpu) {
  EXPECT_EQ(crc32c_table("123456789", 9, 0), 0xE3069283u);
}

TEST(Crc32c, ContinuesAcrossPieces) {
  const std::string s = "123456789";
  for (std::size_t cut = 0; cut <= s.size(); ++cut) {
    const std::uint32_t head = crc32c(s.data(), cut);
    EXPECT_EQ(crc32c(s.data() + cut, s.size() - cut, head), 0xE3069283u) << "cut at " << cut;
  }
}

TEST(Crc32c, Sse42AndTableAgree) {
  if (!has_sse42()) GTEST_SKIP() << "this CPU has no SSE4.2";
  std::vector<std::uint8_t> bytes(4099);
  std::uint32_t x = 12345;
  for (auto& b : bytes) {
    x = x * 1664525u + 1013904223u;
    b = static_cast<std::uint8_t>(x >> 24);
  }
  // Every length up to 40 from every alignment up to 8, then long runs.
  for (std::size_t start = 0; start < 8; ++start) {
    for (std::size_t n = 0; n <= 40; ++n) {
      ASSERT_EQ(crc32c_sse42(bytes.data() + start, n, 0), crc32c_table(bytes.data() + start, n, 0))
          << "start " << start << " length " << n;
    }
  }
  for (const std::uint32_t seed : {0u, 0xDEADBEEFu}) {
    EXPECT_EQ(crc32c_sse42(bytes.data(), bytes.size(), seed),
              crc32c_table(bytes.data(), bytes.size(), seed));
  }
}

}  // namespace
}  // namespace ruche
