#include "runtime/net/connection.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <fmt/format.h>

#include <sys/socket.h>

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
  {
    std::lock_guard lock(out_mu_);
    fd_ = socket_.native_handle();
  }
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

void Connection::gather(const std::vector<kj::Array<capnp::word>>& batch, std::size_t skip) {
  // Frames below this size are copied (a memcpy is cheaper than one more
  // iovec, and asio writes at most 64 iovecs per syscall); larger ones are not.
  constexpr std::size_t kCopyBelow = 4096;
  flat_.clear();
  bufs_.clear();
  // First pass: copy, remembering each piece as a frame written in place or
  // a run of copies in flat_ (which may still move as it grows).
  pieces_.clear();
  for (const auto& f : batch) {
    const auto* p = reinterpret_cast<const std::byte*>(f.begin());
    std::size_t n = f.size() * sizeof(capnp::word);
    if (&f == &batch.front()) p += skip, n -= skip;
    if (n >= kCopyBelow) {
      pieces_.push_back({p, 0, n});
      continue;
    }
    const std::size_t at = flat_.size();
    flat_.insert(flat_.end(), p, p + n);
    if (!pieces_.empty() && !pieces_.back().in_place)
      pieces_.back().size += n;  // extends the current run
    else
      pieces_.push_back({nullptr, at, n});
  }
  // Second pass, once flat_ stops moving: the buffers.
  for (const auto& pc : pieces_) bufs_.emplace_back(pc.in_place ? pc.in_place : flat_.data() + pc.begin, pc.size);
}

asio::awaitable<void> Connection::writer() {
  std::vector<kj::Array<capnp::word>> batch;
  while (!closed_) {
    bool finishing = false;
    std::size_t skip = 0;
    {
      std::lock_guard lock(out_mu_);
      batch.swap(out_);  // out_ keeps batch's old capacity for the next burst
      skip = std::exchange(head_written_, 0);
      finishing = finishing_;
      if (batch.empty() && !finishing) writer_asleep_ = true;
    }
    if (!batch.empty()) {
      // Everything queued goes out in one gathered write.
      gather(batch, skip);
      co_await asio::async_write(socket_, bufs_, asio::use_awaitable);
      batch.clear();
      continue;
    }
    if (finishing) {
      shut("finished");
      break;
    }
    // send()/finish()/close() cancel the timer; a cancel posted before this
    // wait started cannot be lost: it runs on this strand, after the wait.
    boost::system::error_code ec;
    co_await wake_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

void Connection::send(kj::Array<capnp::word> frame) {
  bool wake = false;
  const auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard lock(out_mu_);
    if (out_closed_) return;
    // A lone frame to an idle writer is written right here: a request/reply
    // exchange then costs no hop to the strand's thread on either side. In
    // a burst (the last send was moments ago) frames queue for one gathered
    // write instead of a syscall each. out_mu_ is held across the write, so
    // neither the writer nor shut() (which closes the descriptor) can run
    // while it is in progress.
    const bool lone = now - last_send_ > kBurstGap;
    last_send_ = now;
    if (lone && writer_asleep_ && out_.empty() && fd_ >= 0) {
      const std::size_t n = frame.size() * sizeof(capnp::word);
      const ssize_t w = ::send(fd_, frame.begin(), n, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (w == static_cast<ssize_t>(n)) return;
      // Partly written, or the socket is full or failed: the writer sends
      // the rest (and reports a failure as its own).
      head_written_ = w > 0 ? static_cast<std::size_t>(w) : 0;
    }
    out_.push_back(std::move(frame));
    wake = std::exchange(writer_asleep_, false);
  }
  if (wake) asio::post(socket_.get_executor(), [self = shared_from_this()]() { self->wake_.cancel(); });
}

void Connection::finish() {
  {
    std::lock_guard lock(out_mu_);
    finishing_ = true;
    writer_asleep_ = false;
  }
  asio::post(socket_.get_executor(), [self = shared_from_this()]() { self->wake_.cancel(); });
}

void Connection::close(std::string reason) {
  asio::post(socket_.get_executor(), [self = shared_from_this(), r = std::move(reason)]() { self->shut(r); });
}

void Connection::shut(const std::string& reason) {
  if (closed_) return;
  closed_ = true;
  {
    // First, under the lock: no send() writes to the descriptor once it may
    // be closed (and its number reused).
    std::lock_guard lock(out_mu_);
    out_closed_ = true;
    fd_ = -1;
    out_.clear();
  }
  boost::system::error_code ignored;
  socket_.shutdown(Socket::shutdown_both, ignored);
  socket_.close(ignored);
  wake_.cancel();
  on_frame_ = nullptr;  // handlers often hold their owner, who holds us
  if (on_close_) {
    auto cb = std::move(on_close_);
    cb(reason);
  }
}

}  // namespace troupe::net
