#pragma once
// What every enum named by words (runtime/enum_words.hpp) must do: each word
// reads back as its value and prints as itself; a word that is not one is
// refused, and to_enum's message names it and lists the accepted words.
#include <catch2/catch.hpp>

#include <string>
#include <string_view>

#include <fmt/format.h>

#include "runtime/enum_words.hpp"

namespace troupe::test {

template <WordedEnum E>
void check_enum_words(std::string_view what, const std::string& words) {
  INFO(what);
  CHECK(enum_choices<E>() == words);
  for (E e : enum_values<E>()) {
    const std::string_view w = enum_word(e);
    INFO(w);
    CHECK(parse_enum<E>(w) == e);
    CHECK(to_enum<E>(w, what) == e);
    CHECK(fmt::format("{}", e) == w);
    CHECK(to_string(e) == w);  // the enum's own, beside it
  }
  for (const char* bad : {"nope", "", " "}) {
    INFO("'" << bad << "'");
    CHECK_FALSE(parse_enum<E>(bad).has_value());
    CHECK_THROWS_WITH(to_enum<E>(bad, what),
                      Catch::Contains(fmt::format("unknown {} '{}': expected {}", what, bad, words)));
  }
}

}  // namespace troupe::test
