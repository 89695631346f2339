#include "runtime/net/connection.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "runtime/errors.hpp"

namespace troupe::net {

std::shared_ptr<Connection> Connection::make(Socket s, std::string peer, std::size_t max_frame) {
  return std::shared_ptr<Connection>(new Connection(std::move(s), std::move(peer), max_frame));
}

Connection::Connection(Socket s, std::string peer, std::size_t max_frame)
    : socket_(std::move(s)), peer_(std::move(peer)), max_frame_(max_frame), wake_(socket_.get_executor()) {
  wake_.expires_at(asio::steady_timer::time_point::max());
}

asio::awaitable<void> Connection::fill(std::size_t n) {
  while (in_end_ - in_begin_ < n) {
    if (in_begin_ > 0) {  // compact: keep the unread bytes at the front
      std::memmove(in_.data(), in_.data() + in_begin_, in_end_ - in_begin_);
      in_end_ -= in_begin_;
      in_begin_ = 0;
    }
    in_end_ += co_await socket_.async_read_some(asio::buffer(in_.data() + in_end_, in_.size() - in_end_),
                                                asio::use_awaitable);
  }
}

std::size_t Connection::take_buffered(void* dst, std::size_t n) {
  n = std::min(n, in_end_ - in_begin_);
  std::memcpy(dst, in_.data() + in_begin_, n);
  in_begin_ += n;
  return n;
}

asio::awaitable<Frame> Connection::read_frame() {
  co_await fill(sizeof(capnp::word));
  capnp::word first;
  std::memcpy(&first, in_.data() + in_begin_, sizeof first);
  const std::size_t table = table_words(first);  // bounded by kMaxSegments: fits the buffer
  co_await fill(table * sizeof(capnp::word));
  auto table_buf = kj::heapArray<capnp::word>(table);
  take_buffered(table_buf.begin(), table * sizeof(capnp::word));
  const std::size_t total = frame_words(table_buf.asPtr(), max_frame_);  // checked before allocating
  auto words = kj::heapArray<capnp::word>(total);
  std::memcpy(words.begin(), table_buf.begin(), table * sizeof(capnp::word));
  auto* rest = reinterpret_cast<std::byte*>(words.begin() + table);
  std::size_t need = (total - table) * sizeof(capnp::word);
  std::size_t got = take_buffered(rest, need);
  if (got < need)  // a large frame: read its remainder straight into place
    co_await asio::async_read(socket_, asio::buffer(rest + got, need - got), asio::use_awaitable);
  co_return Frame(std::move(words));
}

asio::awaitable<void> Connection::write_frame(kj::Array<capnp::word> frame) {
  co_await asio::async_write(socket_, asio::buffer(frame.begin(), frame.size() * sizeof(capnp::word)),
                             asio::use_awaitable);
}

void Connection::start(FrameHandler on_frame, CloseHandler on_close) {
  on_frame_ = std::move(on_frame);
  on_close_ = std::move(on_close);
  auto self = shared_from_this();
  asio::co_spawn(socket_.get_executor(), reader(), [self](std::exception_ptr e) {
    if (!e) return self->shut("closed");
    try {
      std::rethrow_exception(e);
    } catch (const boost::system::system_error& se) {
      self->shut(se.code() == asio::error::eof ? "peer closed the connection" : se.what());
    } catch (const std::exception& ex) {
      self->shut(ex.what());
    }
  });
  asio::co_spawn(socket_.get_executor(), writer(), [self](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      self->shut(fmt::format("write failed: {}", ex.what()));
    }
  });
}

asio::awaitable<void> Connection::reader() {
  while (!closed_) {
    Frame f = co_await read_frame();
    if (on_frame_) on_frame_(std::move(f));
  }
}

asio::awaitable<void> Connection::writer() {
  while (!closed_) {
    while (!out_.empty() && !closed_) {
      // Everything queued goes out in one gathered write: one syscall for a
      // burst of calls instead of one per frame.
      std::vector<kj::Array<capnp::word>> batch;
      std::vector<asio::const_buffer> bufs;
      while (!out_.empty() && batch.size() < 256) {
        batch.push_back(std::move(out_.front()));
        out_.pop_front();
        bufs.emplace_back(batch.back().begin(), batch.back().size() * sizeof(capnp::word));
      }
      co_await asio::async_write(socket_, bufs, asio::use_awaitable);
    }
    if (closed_) break;
    if (finishing_) {
      shut("finished");
      break;
    }
    boost::system::error_code ec;
    co_await wake_.async_wait(asio::redirect_error(asio::use_awaitable, ec));  // cancelled by send()/close()
  }
}

void Connection::send(kj::Array<capnp::word> frame) {
  asio::post(socket_.get_executor(), [self = shared_from_this(), f = std::move(frame)]() mutable {
    if (self->closed_) return;
    self->out_.push_back(std::move(f));
    self->wake_.cancel();
  });
}

void Connection::finish() {
  asio::post(socket_.get_executor(), [self = shared_from_this()]() {
    self->finishing_ = true;
    self->wake_.cancel();
  });
}

void Connection::close(std::string reason) {
  asio::post(socket_.get_executor(), [self = shared_from_this(), r = std::move(reason)]() { self->shut(r); });
}

void Connection::shut(const std::string& reason) {
  if (closed_) return;
  closed_ = true;
  boost::system::error_code ignored;
  socket_.shutdown(Socket::shutdown_both, ignored);
  socket_.close(ignored);
  wake_.cancel();
  out_.clear();
  on_frame_ = nullptr;  // handlers often hold their owner, who holds us
  if (on_close_) {
    auto cb = std::move(on_close_);
    cb(reason);
  }
}

}  // namespace troupe::net
