#pragma once
// Runs an awaitable with a deadline. Asio's `a || b` waits for the first to
// *succeed*, so an operation that fails fast would otherwise sit out the whole
// timer; here its exception ends the wait at once.
#include <chrono>
#include <exception>
#include <optional>
#include <utility>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>

#include "runtime/errors.hpp"

namespace troupe::net {

template <class T>
boost::asio::awaitable<T> within(boost::asio::awaitable<T> op, std::chrono::milliseconds limit, const char* what) {
  using namespace boost::asio::experimental::awaitable_operators;
  struct Outcome {
    std::optional<T> value;
    std::exception_ptr error;
  };
  auto guarded = [](boost::asio::awaitable<T> inner) -> boost::asio::awaitable<Outcome> {
    Outcome o;
    try {
      o.value.emplace(co_await std::move(inner));
    } catch (...) {
      o.error = std::current_exception();
    }
    co_return o;
  };
  boost::asio::steady_timer timer(co_await boost::asio::this_coro::executor, limit);
  auto r = co_await (guarded(std::move(op)) || timer.async_wait(boost::asio::use_awaitable));
  if (r.index() == 1) throw TimeoutError(fmt::format("{}: no answer within {} ms", what, limit.count()));
  Outcome o = std::get<0>(std::move(r));
  if (o.error) std::rethrow_exception(o.error);
  co_return std::move(*o.value);
}

}  // namespace troupe::net
