#pragma once
// Calls checked where they are written: ActorRef<T>::call(&T::m, args...)
// with an argument that does not convert to the method's parameter, or only
// by narrowing it (2.9 for an int), or with the wrong number of arguments, is
// one static_assert whose "required from here" is the caller's line, and
// whose template names the method, the parameter and both types:
//
//   error: static assertion failed: troupe: this argument cannot be passed to the
//          method's parameter (in call_argument_error<method, parameter number,
//          parameter type, argument type> named above)
//   In instantiation of 'struct troupe::call_argument_error<int (Counter::*)(int), 1, int, const char*>'
//   required from here: driver.cpp:12
//
// Narrowing follows the language's own rule (list-initialisation): a floating
// value for an integer, a wider integer for a narrower one, an integer for a
// floating parameter; pass the parameter's type (2.0, static_cast<int>(x)).
#include <cstddef>
#include <tuple>
#include <type_traits>
#include <utility>

#include "runtime/detail/call.hpp"
#include "runtime/detail/method_traits.hpp"
#include "runtime/ref.hpp"

namespace troupe {

template <class T>
inline constexpr bool call_check_fails = false;

/// The argument given for parameter `Param` (1-based) of `Method` is an
/// `Argument`, which does not convert to `Parameter`.
template <class Method, std::size_t Param, class Parameter, class Argument>
struct call_argument_error {
  static_assert(call_check_fails<Method>,
                "troupe: this argument cannot be passed to the method's parameter (in call_argument_error<method, "
                "parameter number, parameter type, argument type> named above)");
};
/// ...converts only by narrowing (a value the parameter cannot hold).
template <class Method, std::size_t Param, class Parameter, class Argument>
struct call_argument_narrows {
  static_assert(call_check_fails<Method>,
                "troupe: this argument would be narrowed to the method's parameter type (see call_argument_narrows"
                "<method, parameter number, parameter type, argument type> named above); pass a value of the parameter's "
                "type");
};
/// `Method` takes `Expected` arguments; the call gives `Given`.
template <class Method, std::size_t Expected, std::size_t Given>
struct call_arity_error {
  static_assert(call_check_fails<Method>,
                "troupe: wrong number of arguments for the method (in call_arity_error<method, parameters, "
                "arguments given> named above)");
};
/// `Method` is an asio::awaitable coroutine, and runtime/asio.hpp, which
/// runs those, is not included.
template <class Method>
struct call_needs_asio_header {
  static_assert(call_check_fails<Method>,
                "troupe: this method returns asio::awaitable: include \"runtime/asio.hpp\" before calling it (in "
                "call_needs_asio_header<method> named above)");
};
/// `Method` is not a method of the actor class `Actor`.
template <class Method, class Actor>
struct call_method_not_of_actor {
  static_assert(call_check_fails<Method>,
                "troupe: the method does not belong to the actor's class (in call_method_not_of_actor<method, "
                "actor class> named above)");
};

namespace detail {

// What parameter P receives from an argument A: the value of a Ref<U> given
// for a U (the call resolves it first), else A itself.
template <class P, class A>
struct received {
  using type = A;
};
template <class P, class U>
  requires(is_ref_v<U> && !is_ref_v<P>)
struct received<P, U> {
  using type = typename std::decay_t<U>::value_type&;
};

template <class P, class A>
constexpr bool converts() {
  using V = typename received<P, A>::type;
  return std::is_convertible_v<V, P> || std::is_constructible_v<std::remove_cvref_t<P>, V>;
}

template <class P, class A>
constexpr bool narrows() {
  using V = std::remove_cvref_t<typename received<P, A>::type>;
  using D = std::remove_cvref_t<P>;
  if constexpr ((std::is_arithmetic_v<D> || std::is_enum_v<D>) && (std::is_arithmetic_v<V> || std::is_enum_v<V>))
    return !requires(V v) { D{v}; };
  else
    return false;
}

template <class M, class Params, class... A>
struct check_params;
template <class M, class... P, class... A>
struct check_params<M, std::tuple<P...>, A...> {
  template <std::size_t... I>
  static constexpr bool ok(std::index_sequence<I...>) {
    return ((converts<P, A>() && !narrows<P, A>()) && ...);
  }
  static constexpr bool value = ok(std::index_sequence_for<P...>{});
  // Instantiates the error of the first bad parameter only.
  template <std::size_t I = 0>
  static void report() {
    if constexpr (I < sizeof...(P)) {
      using Pi = std::tuple_element_t<I, std::tuple<P...>>;
      using Ai = std::tuple_element_t<I, std::tuple<A...>>;
      if constexpr (!converts<Pi, Ai>())
        (void)sizeof(call_argument_error<M, I + 1, Pi, Ai>);
      else if constexpr (narrows<Pi, Ai>())
        (void)sizeof(call_argument_narrows<M, I + 1, Pi, std::remove_cvref_t<typename received<Pi, Ai>::type>>);
      else
        report<I + 1>();
    }
  }
};

/// Every check of a call of method M on an ActorRef<T> with arguments A...
template <class T, class M, class... A>
struct call_check {
  using traits = method_traits<M>;
  static constexpr bool member = std::is_base_of_v<typename traits::class_type, T>;
  static constexpr bool arity = traits::arity == sizeof...(A);
  static constexpr bool params = [] {
    if constexpr (arity)
      return check_params<M, typename traits::params, A...>::value;
    else
      return false;
  }();
  static constexpr bool asio = call_result<typename traits::return_type>::kind != MethodKind::awaitable ||
                               !awaitable_runner_missing<typename traits::return_type>;
  static constexpr bool ok = member && arity && params && asio;
  static void report() {
    if constexpr (!asio)
      (void)sizeof(call_needs_asio_header<M>);
    else if constexpr (!member)
      (void)sizeof(call_method_not_of_actor<M, T>);
    else if constexpr (!arity)
      (void)sizeof(call_arity_error<M, traits::arity, sizeof...(A)>);
    else
      check_params<M, typename traits::params, A...>::report();
  }
};

}  // namespace detail
}  // namespace troupe
