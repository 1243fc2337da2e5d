// Codecs: how a typed stage turns record bytes into values and values back into bytes.
//
// A codec for T is any type with
//     T decode(std::string_view bytes) const;            // throw RecordError on bad bytes
//     void encode(const T& value, std::string& out) const;  // append the bytes to `out`
// rivus::Codec<T> is the codec Rivus picks when the user names none:
//   - std::string, std::string_view: the bytes themselves (a decoded string_view points into
//     the input record and is valid only during the call that received it);
//   - integers (std::int8_t and std::uint8_t too) and floating-point numbers: decimal text
//     (std::to_chars / std::from_chars, exact round trip), so typed stages read the built-in
//     `range` and `lines` sources and write readable files; bool: "true" / "false" (decodes
//     "1" / "0" too);
//   - every other trivially copyable type (structs of numbers, enums, char): its object bytes,
//     exactly sizeof(T) of them, in this machine's byte order (records never leave the machine);
//   - anything else: no default; specialise rivus::Codec<T> or pass a codec object to
//     rivus::stage(fn, codec...) (function_stage.h).
//
// Header-only, no state: safe to use from any thread and in any worker process.
#pragma once

#include <charconv>
#include <cstring>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>

#include "rivus/runtime/record.h"

namespace rivus {

template <class T>
struct Codec;  // specialised below; a user may add specialisations for their own types

namespace detail {

// Character types are bytes, not numbers; signed char and unsigned char are std::int8_t and
// std::uint8_t, so they are numbers.
template <class T>
inline constexpr bool kIsCharType =
    std::is_same_v<T, char> || std::is_same_v<T, char8_t> || std::is_same_v<T, char16_t> ||
    std::is_same_v<T, char32_t> || std::is_same_v<T, wchar_t>;

// Numbers written as decimal text.
template <class T>
inline constexpr bool kIsTextNumber =
    std::is_arithmetic_v<T> && !std::is_same_v<T, bool> && !kIsCharType<T>;

[[noreturn]] inline void bad_bytes(std::string_view bytes, const std::string& expected) {
  constexpr std::size_t kShown = 40;  // enough to recognise a record in a dead-letter entry
  std::string shown(bytes.substr(0, kShown));
  if (bytes.size() > kShown) shown += "...";
  throw RecordError("cannot decode " + std::to_string(bytes.size()) + " bytes ('" + shown +
                    "') as " + expected);
}

}  // namespace detail

template <>
struct Codec<std::string> {
  std::string decode(std::string_view bytes) const { return std::string(bytes); }
  void encode(const std::string& v, std::string& out) const { out.append(v); }
};

template <>
struct Codec<std::string_view> {
  std::string_view decode(std::string_view bytes) const { return bytes; }
  void encode(std::string_view v, std::string& out) const { out.append(v); }
};

template <>
struct Codec<bool> {
  bool decode(std::string_view bytes) const {
    if (bytes == "true" || bytes == "1") return true;
    if (bytes == "false" || bytes == "0") return false;
    detail::bad_bytes(bytes, "a bool (true, false, 1 or 0)");
  }
  void encode(bool v, std::string& out) const { out.append(v ? "true" : "false"); }
};

// Numbers: decimal text.
template <class T>
requires detail::kIsTextNumber<T>
struct Codec<T> {
  T decode(std::string_view bytes) const {
    T v{};
    const char* end = bytes.data() + bytes.size();
    const auto [p, ec] = std::from_chars(bytes.data(), end, v);
    if (bytes.empty() || ec != std::errc() || p != end) {
      detail::bad_bytes(
          bytes, std::is_integral_v<T> ? "an integer in decimal text" : "a number in decimal text");
    }
    return v;
  }
  void encode(T v, std::string& out) const {
    char buf[64];  // enough for any integer and for the shortest round-trip form of a double
    const auto [p, ec] = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, static_cast<std::size_t>(p - buf));
  }
};

// Other trivially copyable types: their object bytes.
template <class T>
requires(std::is_trivially_copyable_v<T> && !detail::kIsTextNumber<T> && !std::is_same_v<T, bool> &&
         !std::is_pointer_v<T> && !std::is_same_v<T, std::string_view>) struct Codec<T> {
  T decode(std::string_view bytes) const {
    if (bytes.size() != sizeof(T)) {
      detail::bad_bytes(bytes, "an object of " + std::to_string(sizeof(T)) + " bytes");
    }
    T v;
    std::memcpy(&v, bytes.data(), sizeof(T));
    return v;
  }
  void encode(const T& v, std::string& out) const {
    out.append(reinterpret_cast<const char*>(&v), sizeof(T));
  }
};

// True when Rivus has a default codec for T (or the user specialised Codec<T>).
template <class T>
concept HasDefaultCodec = requires(const Codec<T>& c, const T& v, std::string& out,
                                   std::string_view bytes) {
  { c.decode(bytes) } -> std::convertible_to<T>;
  c.encode(v, out);
};

// True when C is a codec for T.
template <class C, class T>
concept CodecFor = requires(const C& c, const T& v, std::string& out, std::string_view bytes) {
  { c.decode(bytes) } -> std::convertible_to<T>;
  c.encode(v, out);
};

}  // namespace rivus
