// Function stages: a lambda or free function wrapped into a Stage.
//
// The function's shape decides what the stage does with each input record:
//     out  fn(std::string_view bytes)    // the record's bytes (valid during the call only)
//     out  fn(const rivus::Record& r)    // bytes plus seq, key and event time
//     out  fn(T value)                   // typed: the bytes decoded by a codec for T
// and its return type how many records it emits:
//     X                 one record           (a map)
//     std::optional<X>  zero or one record   (a filter that may also change the record)
//     std::vector<X>    any number           (a flat map)
// where X is std::string, std::string_view or const char* (the bytes themselves), a
// rivus::Record (emitted as is; its seq must not go below the input's), or any type with a codec
// (codec.h). Outputs inherit the input's seq, key and event time.
//
// Codec objects passed after the function are used for every type they can encode and decode;
// other types use rivus::Codec<T>. A type with neither is a compile-time error naming the fix.
//
// The wrapped function runs in worker processes: each worker gets its own copy (so a mutable
// lambda keeps per-worker state), created when the worker starts and again after a crash; it
// must not rely on state it did not get from its input. Throwing (RecordError or any
// std::exception) fails the record: it is retried and then dead-lettered (docs/embedding.md).
//
// Register a function stage by name to use it from YAML or a plugin:
//     RIVUS_REGISTER_STAGE(upper, rivus::function_stage_info("upper", "upper-cases", to_upper));
// or use it directly in a pipeline built in code: rivus::stage(fn) (rivus/pipeline.h).
#pragma once

#include <concepts>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "rivus/runtime/codec.h"
#include "rivus/runtime/record.h"
#include "rivus/runtime/stage.h"

namespace rivus {
namespace detail {

template <class T>
struct OptionalTraits : std::false_type {};
template <class T>
struct OptionalTraits<std::optional<T>> : std::true_type {
  using Element = T;
};

template <class T>
struct VectorTraits : std::false_type {};
template <class T, class A>
struct VectorTraits<std::vector<T, A>> : std::true_type {
  using Element = T;
};

// The parameter type of a callable with exactly one parameter and no template parameters.
template <class F>
struct CallableArg : CallableArg<decltype(&F::operator())> {};
template <class R, class A>
struct CallableArg<R (*)(A)> {
  using Type = A;
};
template <class R, class A>
struct CallableArg<R (*)(A) noexcept> {
  using Type = A;
};
template <class R, class C, class A>
struct CallableArg<R (C::*)(A)> {
  using Type = A;
};
template <class R, class C, class A>
struct CallableArg<R (C::*)(A) const> {
  using Type = A;
};
template <class R, class C, class A>
struct CallableArg<R (C::*)(A) noexcept> {
  using Type = A;
};
template <class R, class C, class A>
struct CallableArg<R (C::*)(A) const noexcept> {
  using Type = A;
};

template <class F>
inline constexpr bool kTakesBytes = std::is_invocable_v<F&, std::string_view>;
template <class F>
inline constexpr bool kTakesRecord = !kTakesBytes<F> && std::is_invocable_v<F&, const Record&>;

// The decoded input type of a typed function.
template <class F, bool Typed = !kTakesBytes<F> && !kTakesRecord<F>>
struct InputOf {
  using Type = void;
};
template <class F>
struct InputOf<F, true> {
  using Type = std::remove_cvref_t<typename CallableArg<F>::Type>;
};

template <class X>
inline constexpr bool kIsBytes =
    std::is_convertible_v<const X&, std::string_view> && !std::is_same_v<X, std::nullptr_t>;

// Holds the user's codec objects; codec<T>() is the first of them that handles T, or Codec<T>.
template <class... Cs>
class CodecSet {
 public:
  explicit CodecSet(Cs... cs) : codecs_(std::move(cs)...) {}

  template <class T, std::size_t I = 0>
  const auto& codec() const {
    if constexpr (I < sizeof...(Cs)) {
      if constexpr (CodecFor<std::tuple_element_t<I, std::tuple<Cs...>>, T>) {
        return std::get<I>(codecs_);
      } else {
        return codec<T, I + 1>();
      }
    } else {
      static_assert(HasDefaultCodec<T>,
                    "Rivus has no codec for this type: specialise rivus::Codec<T> (with decode "
                    "and encode) or pass a codec object to rivus::stage(fn, codec)");
      static const Codec<T> kFallback{};
      return kFallback;
    }
  }

 private:
  std::tuple<Cs...> codecs_;
};

// Calls `fn` on one input record, decoding it first if `fn` is typed.
template <class F, class... Cs>
decltype(auto) call_on(F& fn, const Record& r, const CodecSet<Cs...>& codecs) {
  if constexpr (kTakesBytes<F>) {
    return fn(r.data);
  } else if constexpr (kTakesRecord<F>) {
    return fn(r);
  } else {
    using T = typename InputOf<F>::Type;
    static_assert(std::is_invocable_v<F&, T>,
                  "a stage function takes std::string_view, const rivus::Record& or one value");
    return fn(codecs.template codec<T>().decode(r.data));
  }
}

template <class F, class... Cs>
class FunctionStage final : public Stage {
 public:
  FunctionStage(F fn, CodecSet<Cs...> codecs) : fn_(std::move(fn)), codecs_(std::move(codecs)) {}

  void process(const Batch& batch, Emitter& out) override {
    for (const Record& r : batch) {
      using Result = decltype(call_on(fn_, r, codecs_));
      static_assert(!std::is_void_v<Result>,
                    "a stage function returns its output: X, std::optional<X> or std::vector<X>");
      emit_all(r, call_on(fn_, r, codecs_), out);
    }
  }

 private:
  template <class R>
  void emit_all(const Record& from, R&& result, Emitter& out) {
    using D = std::remove_cvref_t<R>;
    if constexpr (OptionalTraits<D>::value) {
      if (result.has_value()) emit_one(from, *result, out);
    } else if constexpr (VectorTraits<D>::value) {
      for (const auto& x : result) emit_one(from, x, out);
    } else {
      emit_one(from, result, out);
    }
  }

  template <class X>
  void emit_one(const Record& from, const X& x, Emitter& out) {
    if constexpr (std::is_same_v<X, Record>) {
      out.emit(x);
    } else if constexpr (kIsBytes<X>) {
      out.emit(from, std::string_view(x));
    } else {
      buf_.clear();
      codecs_.template codec<X>().encode(x, buf_);
      out.emit(from, buf_);
    }
  }

  F fn_;
  CodecSet<Cs...> codecs_;
  std::string buf_;  // reused for encoded outputs (the emitter copies them into the ring)
};

template <class P, class... Cs>
class FilterStage final : public Stage {
 public:
  FilterStage(P pred, CodecSet<Cs...> codecs)
      : pred_(std::move(pred)), codecs_(std::move(codecs)) {}

  void process(const Batch& batch, Emitter& out) override {
    for (const Record& r : batch) {
      if (static_cast<bool>(call_on(pred_, r, codecs_))) out.emit(r);
    }
  }

 private:
  P pred_;
  CodecSet<Cs...> codecs_;
};

}  // namespace detail

// A factory making a new FunctionStage around a copy of `fn` (and the codecs) per worker.
template <class F, class... Codecs>
std::function<std::unique_ptr<Stage>()> function_stage_factory(F fn, Codecs... codecs) {
  using S = detail::FunctionStage<std::decay_t<F>, Codecs...>;
  return [fn = std::move(fn), codecs = detail::CodecSet<Codecs...>(std::move(codecs)...)] {
    return std::unique_ptr<Stage>(std::make_unique<S>(fn, codecs));
  };
}

// A factory for a stage that passes on, unchanged, the records for which `pred` is true.
template <class P, class... Codecs>
std::function<std::unique_ptr<Stage>()> filter_stage_factory(P pred, Codecs... codecs) {
  using S = detail::FilterStage<std::decay_t<P>, Codecs...>;
  return [pred = std::move(pred), codecs = detail::CodecSet<Codecs...>(std::move(codecs)...)] {
    return std::unique_ptr<Stage>(std::make_unique<S>(pred, codecs));
  };
}

// A transform named `name` that runs `fn`, ready for StageRegistry::add or RIVUS_REGISTER_STAGE.
template <class F, class... Codecs>
StageInfo function_stage_info(std::string name, std::string summary, F fn, Codecs... codecs) {
  StageInfo info;
  info.name = std::move(name);
  info.role = StageRole::kTransform;
  info.summary = std::move(summary);
  info.make_stage = function_stage_factory(std::move(fn), std::move(codecs)...);
  return info;
}

// A transform named `name` that keeps the records for which `pred` is true.
template <class P, class... Codecs>
StageInfo filter_stage_info(std::string name, std::string summary, P pred, Codecs... codecs) {
  StageInfo info;
  info.name = std::move(name);
  info.role = StageRole::kTransform;
  info.summary = std::move(summary);
  info.make_stage = filter_stage_factory(std::move(pred), std::move(codecs)...);
  return info;
}

}  // namespace rivus
