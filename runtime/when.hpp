#pragma once
// Combinators over Refs: when_all (every result, or the first error) and
// when_any (the index of the first to finish).
#include <atomic>
#include <cstddef>
#include <memory>
#include <tuple>
#include <vector>

#include "runtime/ref.hpp"

namespace troupe {

namespace detail {
template <class Out>
struct Joiner {
  Promise<Out> out;
  std::atomic<std::size_t> left;
  std::atomic<bool> failed{false};
  explicit Joiner(std::size_t n) : left(n) {}
  // Returns true if the caller must now produce the result.
  bool arrive(const StateBase& s) {
    if (s.error()) {
      if (!failed.exchange(true)) out.set_error(s.error());
      return false;
    }
    return left.fetch_sub(1, std::memory_order_acq_rel) == 1 && !failed.load();
  }
};
}  // namespace detail

/// Ref to every value, in order; fails with the first error that arrives.
template <class T>
auto when_all(std::vector<Ref<T>> refs) {
  using Out = std::conditional_t<std::is_void_v<T>, void, std::vector<T>>;
  auto j = std::make_shared<detail::Joiner<Out>>(refs.size());
  Ref<Out> result = j->out.ref();
  if (refs.empty()) {
    j->out.set_value();  // no results: void, or an empty vector
    return result;
  }
  if (refs[0].state()) result.state()->set_context(refs[0].state()->context());
  auto shared = std::make_shared<std::vector<Ref<T>>>(std::move(refs));
  for (auto& r : *shared) {
    r.state()->on_ready([j, shared, s = r.state()]() {
      if (!j->arrive(*s)) return;
      if constexpr (std::is_void_v<T>) {
        j->out.set_value();
      } else {
        std::vector<T> values;
        values.reserve(shared->size());
        for (auto& x : *shared) values.push_back(x.state()->value());
        j->out.set_value(std::move(values));
      }
    });
  }
  return result;
}

/// Ref to a tuple of the values of differently typed Refs (void gives detail::Unit).
template <class... T>
Ref<std::tuple<detail::stored_t<T>...>> when_all(Ref<T>... refs) {
  using Out = std::tuple<detail::stored_t<T>...>;
  auto j = std::make_shared<detail::Joiner<Out>>(sizeof...(T));
  Ref<Out> result = j->out.ref();
  auto all = std::make_shared<std::tuple<Ref<T>...>>(refs...);
  auto hook = [&](auto& r) {
    r.state()->on_ready([j, all, s = r.state()]() {
      if (!j->arrive(*s)) return;
      j->out.set_value(std::apply([](auto&... x) { return Out(x.state()->value()...); }, *all));
    });
  };
  (hook(refs), ...);
  return result;
}

/// Ref to the index of the first Ref to finish (with a value or an error).
template <class T>
Ref<std::size_t> when_any(std::vector<Ref<T>> refs) {
  if (refs.empty()) throw UsageError("when_any of no Refs would never complete");
  auto p = std::make_shared<Promise<std::size_t>>();
  auto won = std::make_shared<std::atomic<bool>>(false);
  Ref<std::size_t> result = p->ref();
  for (std::size_t i = 0; i < refs.size(); ++i) {
    refs[i].state()->on_ready([p, won, i]() {
      if (!won->exchange(true)) p->set_value(i);
    });
  }
  return result;
}

}  // namespace troupe
