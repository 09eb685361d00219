// crc32c (Castagnoli, reflected polynomial 0x82F63B78) by table and by SSE4.2, for tests that the
// two agree; crc32c() in checkpoint.h picks the fast one the CPU has.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ruche::checkpoint_crc {

std::uint32_t crc32c_table(const void* data, std::size_t size, std::uint32_t crc);
// Only where has_sse42() is true.
std::uint32_t crc32c_sse42(const void* data, std::size_t size, std::uint32_t crc);
bool has_sse42();

}  // namespace ruche::checkpoint_crc
