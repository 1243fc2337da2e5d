// Window state in a state page: what a replacement worker restores (state_codec.h's format).
#include "state_codec.h"
#include "window.h"

namespace rivus {
namespace {

using detail::Reader;
using detail::Writer;

constexpr std::uint64_t kStateMagic = 0x3157444E49575652ULL;  // "RVWINDW1"

}  // namespace

std::string WindowOperator::save() const {
  Writer w;
  w.u64(kStateMagic);
  w.i64(max_event_);
  w.i64(closed_through_);
  w.u64(late_);
  w.u64(keys_.size());
  auto agg = [&](const Agg& a) {
    w.u64(a.count);
    w.f64(a.sum);
    w.f64(a.min);
    w.f64(a.max);
    w.u64(a.integral ? 1 : 0);
    w.str(a.first);
    w.str(a.last);
    w.str(a.items);
    w.u64(a.max_seq);
    w.i64(a.last_time);
  };
  for (const auto& [key, ks] : keys_) {
    w.str(key);
    w.i64(ks.next_index);
    w.u64(ks.windows.size());
    for (const auto& [start, a] : ks.windows) {
      w.i64(start);
      agg(a);
    }
    w.u64(ks.sessions.size());
    for (const auto& s : ks.sessions) {
      w.i64(s.start);
      w.i64(s.last);
      agg(s.agg);
    }
  }
  return w.take();
}

Status WindowOperator::restore(std::string_view bytes) {
  Reader r(bytes);
  std::uint64_t magic = 0, nkeys = 0;
  auto bad = [] { return Status::Corrupt("window state is damaged"); };
  if (!r.u64(&magic) || magic != kStateMagic) return bad();
  if (!r.i64(&max_event_) || !r.i64(&closed_through_) || !r.u64(&late_) || !r.u64(&nkeys))
    return bad();
  keys_.clear();
  auto agg = [&](Agg& a) {
    std::uint64_t integral = 0;
    return r.u64(&a.count) && r.f64(&a.sum) && r.f64(&a.min) && r.f64(&a.max) && r.u64(&integral) &&
           (a.integral = integral != 0, true) && r.str(&a.first) && r.str(&a.last) &&
           r.str(&a.items) && r.u64(&a.max_seq) && r.i64(&a.last_time);
  };
  for (std::uint64_t i = 0; i < nkeys; ++i) {
    std::string key;
    KeyState ks;
    std::uint64_t nw = 0, ns = 0;
    if (!r.str(&key) || !r.i64(&ks.next_index) || !r.u64(&nw)) return bad();
    for (std::uint64_t j = 0; j < nw; ++j) {
      std::int64_t start = 0;
      Agg a;
      if (!r.i64(&start) || !agg(a)) return bad();
      ks.windows.emplace(start, std::move(a));
    }
    if (!r.u64(&ns)) return bad();
    for (std::uint64_t j = 0; j < ns; ++j) {
      Session s;
      if (!r.i64(&s.start) || !r.i64(&s.last) || !agg(s.agg)) return bad();
      ks.sessions.push_back(std::move(s));
    }
    keys_.emplace(std::move(key), std::move(ks));
  }
  return Status::Ok();
}

}  // namespace rivus
