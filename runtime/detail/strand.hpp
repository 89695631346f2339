#pragma once
// An actor cell's Asio strand: everything that touches the actor runs there.
// Included by the runtime's sources and by runtime/asio.hpp (asio::awaitable
// methods are co_spawned on it); troupe.hpp does not include Asio.
#include <memory>

#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>

namespace troupe::detail {

using Strand = boost::asio::strand<boost::asio::io_context::executor_type>;

struct StrandBox {
  explicit StrandBox(std::shared_ptr<boost::asio::io_context> ctx) : io(std::move(ctx)), strand(boost::asio::make_strand(*io)) {}
  std::shared_ptr<boost::asio::io_context> io;  // the strand must not outlive it
  Strand strand;
};

}  // namespace troupe::detail
