#pragma once
// What a member-function pointer takes and returns, and what Ref a call to it gives.
#include <tuple>
#include <type_traits>

#include "runtime/ref.hpp"
#include "runtime/task.hpp"

// Asio's coroutine type, declared (not defined) here so that a method
// returning it is recognised without including Asio; runtime/asio.hpp runs it.
namespace boost::asio {
template <typename T, typename Executor>
class awaitable;
}

namespace troupe::detail {

template <class M>
struct method_traits;

#define TROUPE_METHOD_TRAITS(QUALS)                          \
  template <class C, class R, class... P>                    \
  struct method_traits<R (C::*)(P...) QUALS> {               \
    using class_type = C;                                    \
    using return_type = R;                                   \
    using params = std::tuple<P...>;                         \
    static constexpr std::size_t arity = sizeof...(P);       \
  };
TROUPE_METHOD_TRAITS()
TROUPE_METHOD_TRAITS(const)
TROUPE_METHOD_TRAITS(noexcept)
TROUPE_METHOD_TRAITS(const noexcept)
TROUPE_METHOD_TRAITS(&)
TROUPE_METHOD_TRAITS(const&)
#undef TROUPE_METHOD_TRAITS

enum class MethodKind { plain, task, awaitable, ref };

template <class R>
struct call_result {
  using type = R;
  static constexpr MethodKind kind = MethodKind::plain;
};
template <class X>
struct call_result<Task<X>> {
  using type = X;
  static constexpr MethodKind kind = MethodKind::task;
};
template <class X, class E>
struct call_result<boost::asio::awaitable<X, E>> {
  using type = X;
  static constexpr MethodKind kind = MethodKind::awaitable;
};
template <class X>
struct call_result<Ref<X>> {
  using type = X;
  static constexpr MethodKind kind = MethodKind::ref;
};

/// The value type of the Ref that calling method M gives.
template <class M>
using call_result_t = typename call_result<typename method_traits<M>::return_type>::type;

}  // namespace troupe::detail
