#include "engine/tensor/npy.h"

#include <charconv>
#include <cstring>
#include <fstream>
#include <sstream>

namespace ruche {
namespace {

constexpr char kMagic[] = "\x93NUMPY";

const char* descr_of(DType t) {
  switch (t) {
    case DType::f32:
      return "<f4";
    case DType::i32:
      return "<i4";
    case DType::i64:
      return "<i8";
    case DType::u8:
      return "|u1";
    case DType::f16:
      return "<f2";
    case DType::bf16:
      break;  // numpy has no bfloat16
  }
  RUCHE_FAIL() << "npy: no numpy dtype for " << dtype_name(t);
}

// The value of `key` in the header dict, e.g. 'descr': '<f4' -> <f4.
std::string header_field(const std::string& header, const std::string& key,
                         const std::string& where) {
  const std::size_t k = header.find("'" + key + "'");
  RUCHE_REQUIRE(k != std::string::npos) << where << ": npy header lacks '" << key << "'";
  std::size_t v = header.find(':', k);
  RUCHE_REQUIRE(v != std::string::npos) << where << ": bad npy header";
  ++v;
  while (v < header.size() && header[v] == ' ') ++v;
  RUCHE_REQUIRE(v < header.size()) << where << ": bad npy header";
  const char open = header[v];
  const char close = open == '(' ? ')' : open == '\'' ? '\'' : ',';
  const std::size_t start = open == '(' || open == '\'' ? v + 1 : v;
  const std::size_t end = header.find(close, start);
  RUCHE_REQUIRE(end != std::string::npos) << where << ": bad npy header";
  return header.substr(start, end - start);
}

}  // namespace

Tensor parse_npy(const std::string& bytes, const std::string& where) {
  RUCHE_REQUIRE(bytes.size() >= 10 && bytes.compare(0, 6, kMagic, 6) == 0)
      << where << ": not a .npy file";
  const int major = static_cast<unsigned char>(bytes[6]);
  std::size_t header_len, header_start;
  if (major == 1) {
    header_len = static_cast<unsigned char>(bytes[8]) |
                 (static_cast<std::size_t>(static_cast<unsigned char>(bytes[9])) << 8);
    header_start = 10;
  } else {
    RUCHE_REQUIRE(bytes.size() >= 12) << where << ": truncated .npy header";
    header_len = 0;
    for (int i = 0; i < 4; ++i) {
      header_len |= static_cast<std::size_t>(static_cast<unsigned char>(bytes[8 + i])) << (8 * i);
    }
    header_start = 12;
  }
  RUCHE_REQUIRE(bytes.size() >= header_start + header_len) << where << ": truncated .npy header";
  const std::string header = bytes.substr(header_start, header_len);

  const std::string descr = header_field(header, "descr", where);
  DType dtype;
  if (descr == "<f4")
    dtype = DType::f32;
  else if (descr == "<i4")
    dtype = DType::i32;
  else if (descr == "<i8")
    dtype = DType::i64;
  else if (descr == "|u1" || descr == "<u1")
    dtype = DType::u8;
  else if (descr == "<f2")
    dtype = DType::f16;
  else
    RUCHE_FAIL() << where << ": unsupported npy dtype '" << descr << "'";

  RUCHE_REQUIRE(header_field(header, "fortran_order", where).find("False") != std::string::npos)
      << where << ": Fortran-ordered arrays are not supported";

  // Dimensions are non-negative integers; the data they announce must be there before anything
  // is allocated (a corrupt header may announce any size: tests/fuzz).
  Shape shape;
  std::stringstream dims(header_field(header, "shape", where));
  std::string dim;
  // nbytes, and the product of the non-zero dimensions (strides are; it must fit in int64).
  std::uint64_t nbytes = dtype_size(dtype);
  std::int64_t nonzero = 1;
  bool overflow = false;
  while (std::getline(dims, dim, ',')) {
    const std::size_t first = dim.find_first_not_of(' '), last = dim.find_last_not_of(' ');
    if (first == std::string::npos) continue;
    std::int64_t d = -1;
    const char* end = dim.data() + last + 1;
    const auto [ptr, ec] = std::from_chars(dim.data() + first, end, d);
    RUCHE_REQUIRE(ec == std::errc() && ptr == end && d >= 0)
        << where << ": bad npy shape '" << header_field(header, "shape", where) << "'";
    RUCHE_REQUIRE(shape.ndim() < Shape::kMaxDims)
        << where << ": more than " << Shape::kMaxDims << " dimensions";
    shape.push_back(d);
    overflow = overflow || __builtin_mul_overflow(nbytes, static_cast<std::uint64_t>(d), &nbytes) ||
               (d > 0 && __builtin_mul_overflow(nonzero, d, &nonzero));
  }
  const std::size_t data_start = header_start + header_len;
  RUCHE_REQUIRE(!overflow && bytes.size() - data_start >= nbytes)
      << where << ": truncated .npy data (" << bytes.size() - data_start << " bytes, the shape "
      << shape.str() << " needs " << (overflow ? std::string("more") : std::to_string(nbytes))
      << ")";

  Tensor t = Tensor::empty(shape, dtype);
  if (t.nbytes()) std::memcpy(t.raw_data(), bytes.data() + data_start, t.nbytes());
  return t;
}

Tensor load_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  RUCHE_REQUIRE(in) << path << ": cannot open";
  std::stringstream buffer;
  buffer << in.rdbuf();
  return parse_npy(buffer.str(), path);
}

std::string to_npy(const Tensor& t) {
  std::string shape = "(";
  for (int i = 0; i < t.ndim(); ++i) shape += std::to_string(t.shape()[i]) + ", ";
  if (t.ndim() > 1) shape.erase(shape.size() - 2, 1);  // (2, 3) but (2,)
  shape += ")";
  std::string header = std::string("{'descr': '") + descr_of(t.dtype()) +
                       "', 'fortran_order': False, 'shape': " + shape + ", }";
  // Pad so the data starts on a 64-byte boundary, as numpy does.
  const std::size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header += '\n';
  std::string out(kMagic, 6);
  out += '\x01';
  out += '\x00';
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>(header.size() >> 8);
  out += header;
  const Tensor host = t.contiguous().to(Device::cpu());
  out.append(static_cast<const char*>(host.raw_data()), host.nbytes());
  return out;
}

void save_npy(const std::string& path, const Tensor& t) {
  std::ofstream out(path, std::ios::binary);
  RUCHE_REQUIRE(out) << path << ": cannot write";
  const std::string bytes = to_npy(t);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  RUCHE_REQUIRE(out.good()) << path << ": write failed";
}

}  // namespace ruche
