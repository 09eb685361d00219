// crc32c (Castagnoli): the SSE4.2 crc32 instruction where the CPU has it (checked at run time),
// else slicing-by-8 tables. Both give the standard value: crc32c("123456789") = 0xE3069283.
#include "engine/checkpoint/crc32c.h"

#include <array>
#include <cstring>

#include "engine/checkpoint/checkpoint.h"

#if defined(__x86_64__) || defined(__i386__)
#include <nmmintrin.h>
#define RUCHE_CRC_X86 1
#endif

namespace ruche {
namespace checkpoint_crc {
namespace {

constexpr std::uint32_t kPoly = 0x82F63B78u;  // reflected Castagnoli

using Tables = std::array<std::array<std::uint32_t, 256>, 8>;

constexpr Tables make_tables() {
  Tables t{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ kPoly : c >> 1;
    t[0][i] = c;
  }
  for (std::uint32_t i = 0; i < 256; ++i) {
    for (std::size_t s = 1; s < 8; ++s) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xFF];
  }
  return t;
}

constexpr Tables kTables = make_tables();

}  // namespace

std::uint32_t crc32c_table(const void* data, std::size_t size, std::uint32_t crc) {
  const auto* p = static_cast<const std::uint8_t*>(data);
  std::uint32_t c = ~crc;
  while (size >= 8) {
    std::uint32_t lo, hi;
    std::memcpy(&lo, p, 4);
    std::memcpy(&hi, p + 4, 4);
    lo ^= c;  // little-endian, as every machine ruche runs on
    c = kTables[7][lo & 0xFF] ^ kTables[6][(lo >> 8) & 0xFF] ^ kTables[5][(lo >> 16) & 0xFF] ^
        kTables[4][lo >> 24] ^ kTables[3][hi & 0xFF] ^ kTables[2][(hi >> 8) & 0xFF] ^
        kTables[1][(hi >> 16) & 0xFF] ^ kTables[0][hi >> 24];
    p += 8;
    size -= 8;
  }
  while (size-- > 0) c = (c >> 8) ^ kTables[0][(c ^ *p++) & 0xFF];
  return ~c;
}

#ifdef RUCHE_CRC_X86

__attribute__((target("sse4.2"))) std::uint32_t crc32c_sse42(const void* data, std::size_t size,
                                                             std::uint32_t crc) {
  const auto* p = static_cast<const std::uint8_t*>(data);
  std::uint64_t c = ~crc;
  while (size >= 8) {
    std::uint64_t word;
    std::memcpy(&word, p, 8);
    c = _mm_crc32_u64(c, word);
    p += 8;
    size -= 8;
  }
  auto c32 = static_cast<std::uint32_t>(c);
  while (size-- > 0) c32 = _mm_crc32_u8(c32, *p++);
  return ~c32;
}

bool has_sse42() {
  static const bool has = __builtin_cpu_supports("sse4.2");
  return has;
}

#else

std::uint32_t crc32c_sse42(const void* data, std::size_t size, std::uint32_t crc) {
  return crc32c_table(data, size, crc);
}

bool has_sse42() { return false; }

#endif

}  // namespace checkpoint_crc

std::uint32_t crc32c(const void* data, std::size_t size, std::uint32_t crc) {
  return checkpoint_crc::has_sse42() ? checkpoint_crc::crc32c_sse42(data, size, crc)
                                     : checkpoint_crc::crc32c_table(data, size, crc);
}

}  // namespace ruche
