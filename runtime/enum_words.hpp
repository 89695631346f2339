#pragma once
// Enums named by words. A choice that configuration gives as text (a
// topology's optimizer name = "adamw", a group's backend "nccl") is an enum in
// C++, so a typo in a driver is a compile error. Each such enum lists its
// words once, next to it, value i named by words[i] (values 0, 1, ... in
// order):
//
//   enum class Memory : std::uint8_t { host, cuda };
//   template <> struct EnumWords<coll::Memory> {
//     static constexpr std::array<std::string_view, 2> words{"host", "cuda"};
//   };
//
// and everything else comes from that list: enum_word(e) and parse_enum<E>
// (text) each way, to_enum<E> (text, what) with a UsageError that lists the
// words, enum_choices<E>() for messages ("host or cuda"), a codec that
// refuses a value outside the list, and fmt printing the word ("{}" of
// Memory::cuda is "cuda").
#include <array>
#include <concepts>
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include <fmt/format.h>

#include "runtime/errors.hpp"

namespace troupe {

/// Specialise with `static constexpr std::array<std::string_view, N> words`.
template <class E>
struct EnumWords;

template <class E>
concept WordedEnum = std::is_enum_v<E> && requires {
  { EnumWords<E>::words.size() } -> std::convertible_to<std::size_t>;
  { EnumWords<E>::words[0] } -> std::convertible_to<std::string_view>;
};

/// True when e is one of E's named values.
template <WordedEnum E>
constexpr bool enum_valid(E e) noexcept {
  return static_cast<std::size_t>(e) < EnumWords<E>::words.size();
}

/// The word naming e ("?" for a value outside the list).
template <WordedEnum E>
constexpr std::string_view enum_word(E e) noexcept {
  return enum_valid(e) ? std::string_view(EnumWords<E>::words[static_cast<std::size_t>(e)]) : std::string_view("?");
}

/// Every value of E, in order.
template <WordedEnum E>
constexpr auto enum_values() noexcept {
  return []<std::size_t... I>(std::index_sequence<I...>) {
    return std::array<E, sizeof...(I)>{static_cast<E>(I)...};
  }(std::make_index_sequence<EnumWords<E>::words.size()>());
}

/// The value `text` names, if any (exact, case-sensitive).
template <WordedEnum E>
constexpr std::optional<E> parse_enum(std::string_view text) noexcept {
  for (E e : enum_values<E>())
    if (enum_word(e) == text) return e;
  return std::nullopt;
}

/// "a", "a or b", "a, b or c": the words for a message.
inline std::string or_list(std::span<const std::string_view> words) {
  std::string s;
  for (std::size_t i = 0; i < words.size(); ++i) {
    if (i > 0) s += i + 1 == words.size() ? " or " : ", ";
    s += words[i];
  }
  return s;
}

/// E's words for a message: "sgd or adamw".
template <WordedEnum E>
std::string enum_choices() {
  return or_list(EnumWords<E>::words);
}

/// The value `text` names, or a UsageError naming it and listing the words:
/// "unknown <what> '<text>': expected a, b or c".
template <WordedEnum E>
E to_enum(std::string_view text, std::string_view what) {
  if (auto e = parse_enum<E>(text)) return *e;
  throw UsageError(fmt::format("unknown {} '{}': expected {}", what, text, enum_choices<E>()));
}

}  // namespace troupe

/// fmt prints a worded enum as its word, with string format specs ("{:>6}").
template <troupe::WordedEnum E>
struct fmt::formatter<E> : fmt::formatter<std::string_view> {
  template <class Context>
  auto format(E e, Context& ctx) const {
    return fmt::formatter<std::string_view>::format(troupe::enum_word(e), ctx);
  }
};
