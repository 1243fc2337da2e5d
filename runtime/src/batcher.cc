// Batcher: the `batch` stage's grouping, and its state page (state_codec.h's format).
#include "batcher.h"

#include <algorithm>

#include "state_codec.h"

namespace rivus {

using detail::Reader;
using detail::Writer;

bool Batcher::add(const Record& r, std::int64_t now, WindowResult* out) {
  if (count_ > 0 && items_.size() + join_.size() + r.data.size() > max_bytes_) {
    take(out);               // full by size: close it, and let this record start the next group
    (void)add(r, now, out);  // records_ > 1 here, so the new group of one is not complete
    return true;
  }
  if (count_ == 0) first_ = now;
  if (count_ > 0) items_ += join_;
  items_.append(r.data);
  ++count_;
  max_seq_ = std::max(max_seq_, r.seq);
  last_time_ = std::max(last_time_, r.time_ns);
  if (count_ >= records_) {
    take(out);
    return true;
  }
  return false;
}

bool Batcher::advance(std::int64_t now, WindowResult* out) {
  if (count_ == 0 || now < first_ + linger_) return false;
  take(out);
  return true;
}

bool Batcher::finish(WindowResult* out) {
  if (count_ == 0) return false;
  take(out);
  return true;
}

void Batcher::take(WindowResult* out) {
  out->value = std::move(items_);
  out->count = count_;
  out->seq = max_seq_;
  out->time_ns = last_time_;
  out->start = first_;
  items_.clear();
  count_ = 0;
  max_seq_ = 0;
}

std::string Batcher::save() const {
  Writer w;
  w.u64(count_);
  w.i64(first_);
  w.u64(max_seq_);
  w.i64(last_time_);
  w.str(items_);
  return w.take();
}

Status Batcher::restore(std::string_view bytes) {
  Reader r(bytes);
  if (!r.u64(&count_) || !r.i64(&first_) || !r.u64(&max_seq_) || !r.i64(&last_time_) ||
      !r.str(&items_)) {
    count_ = 0;
    items_.clear();
    return Status::Corrupt("batch state is damaged");
  }
  return Status::Ok();
}

}  // namespace rivus
