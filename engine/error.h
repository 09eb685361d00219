// ruche::Error for user mistakes, RUCHE_CHECK for broken invariants.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace ruche {

// A user mistake (bad config, flag, file, shape): the CLI prints what() on one line and exits 2.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// A broken invariant inside ruche: a bug, not a user mistake.
class InternalError : public std::logic_error {
 public:
  explicit InternalError(const std::string& what) : std::logic_error(what) {}
};

namespace detail {

// Collects "<< context" and throws on destruction; used only by the macros below.
template <typename E>
class Thrower {
 public:
  Thrower(const char* prefix, const char* file, int line) {
    stream_ << prefix << " (" << file << ":" << line << ")";
  }
  Thrower(const Thrower&) = delete;
  Thrower& operator=(const Thrower&) = delete;
  // Throwing here is the point: the message is whole once every << has run.
  // cppcheck-suppress exceptThrowInDestructor
  // NOLINTNEXTLINE(bugprone-exception-escape)
  [[noreturn]] ~Thrower() noexcept(false) { throw E(stream_.str()); }
  template <typename T>
  Thrower& operator<<(const T& value) {
    if (!separated_) {
      stream_ << ": ";
      separated_ = true;
    }
    stream_ << value;
    return *this;
  }

 private:
  std::ostringstream stream_;
  bool separated_ = false;
};

// Builds a one-line message and throws ruche::Error; the message is the user's, no file:line.
class UserThrower {
 public:
  UserThrower() = default;
  UserThrower(const UserThrower&) = delete;
  UserThrower& operator=(const UserThrower&) = delete;
  // As Thrower's: throws once the message is whole.
  // cppcheck-suppress exceptThrowInDestructor
  // NOLINTNEXTLINE(bugprone-exception-escape)
  [[noreturn]] ~UserThrower() noexcept(false) { throw Error(stream_.str()); }
  template <typename T>
  UserThrower& operator<<(const T& value) {
    stream_ << value;
    return *this;
  }

 private:
  std::ostringstream stream_;
};

}  // namespace detail
}  // namespace ruche

// RUCHE_CHECK(cond) << "context";  throws InternalError naming the condition, file and line.
#define RUCHE_CHECK(cond) \
  if (cond) {             \
  } else                  \
    ::ruche::detail::Thrower<::ruche::InternalError>("check failed: " #cond, __FILE__, __LINE__)

// RUCHE_REQUIRE(cond) << "what was expected and where";  throws ruche::Error (a user mistake).
#define RUCHE_REQUIRE(cond) \
  if (cond) {               \
  } else                    \
    ::ruche::detail::UserThrower()

// RUCHE_FAIL() << "...";  unconditionally throws ruche::Error.
#define RUCHE_FAIL() ::ruche::detail::UserThrower()
