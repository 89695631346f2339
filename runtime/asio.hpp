#pragma once
// Boost.Asio coroutines with troupe (opt in: troupe.hpp does not include Asio).
//
//   #include "runtime/asio.hpp"
//   class Fetcher {
//    public:
//     boost::asio::awaitable<int> fetch(int v) {          // an actor method
//       boost::asio::steady_timer t(co_await boost::asio::this_coro::executor, 5ms);
//       co_await t.async_wait(boost::asio::use_awaitable);
//       co_return co_await store_.call(&Store::put, v).awaitable();
//     }
//   };
//
// An asio::awaitable method is co_spawned on the actor's strand; a Ref is
// awaited in it with `co_await ref.awaitable()` (Asio's await_transform
// admits only its own awaitables and operations), or waited on with any Asio
// completion token through ref.async_wait(token). Read troupe::self() before
// the first co_await there.
#include <exception>
#include <utility>

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "runtime/detail/strand.hpp"
#include "runtime/troupe.hpp"

namespace troupe::detail {

template <>
struct AsioBridge<void> {
  template <class State, class Token>
  static auto async_wait(StatePtr<State> s, Token&& token) {
    return boost::asio::async_initiate<Token, void(std::exception_ptr)>(
        [](auto handler, StatePtr<State> s) {
          auto ex = boost::asio::get_associated_executor(handler);
          auto* raw = s.get();
          raw->on_ready([h = std::move(handler), ex, s = std::move(s)]() mutable {
            boost::asio::post(ex, [h = std::move(h), s = std::move(s)]() mutable { h(s->error()); });
          });
        },
        token, std::move(s));
  }
  // Asio 1.26's (exception_ptr, T) awaitable handler is broken, so the
  // bridge completes with (exception_ptr) and reads the value from the Ref.
  template <class T>
  static boost::asio::awaitable<T> awaitable(Ref<T> r) {
    co_await r.async_wait(boost::asio::use_awaitable);
    co_return r.result_now();
  }
};

template <class X, class E>
struct AwaitableRunner<boost::asio::awaitable<X, E>> {
  template <class Done>
  static void spawn(CellBase& cell, boost::asio::awaitable<X, E> a, Done done) {
    boost::asio::co_spawn(cell.strand_box().strand, std::move(a), std::move(done));
  }
};

}  // namespace troupe::detail
