// Codecs and function stages in one process: every function shape, driven with a fake emitter.
#include "rivus/runtime/codec.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rivus/runtime/function_stage.h"

namespace {

using rivus::Batch;
using rivus::Record;

// A point with a label: not trivially copyable, so it needs a user codec.
struct Point {
  double x = 0;
  double y = 0;
  std::string label;
};

struct PointCodec {
  Point decode(std::string_view bytes) const {
    Point p;
    const auto a = bytes.find(',');
    const auto b = bytes.find(',', a + 1);
    if (a == std::string_view::npos || b == std::string_view::npos) {
      throw rivus::RecordError("not a point: " + std::string(bytes));
    }
    p.x = rivus::Codec<double>{}.decode(bytes.substr(0, a));
    p.y = rivus::Codec<double>{}.decode(bytes.substr(a + 1, b - a - 1));
    p.label = std::string(bytes.substr(b + 1));
    return p;
  }
  void encode(const Point& p, std::string& out) const {
    rivus::Codec<double>{}.encode(p.x, out);
    out += ',';
    rivus::Codec<double>{}.encode(p.y, out);
    out += ',';
    out += p.label;
  }
};

struct Pair {
  std::int32_t a;
  std::int32_t b;
};

}  // namespace

// A user type with a Codec specialisation (the other way to give a type a codec).
struct Celsius {
  double degrees;
  std::string station;  // makes it not trivially copyable
};
template <>
struct rivus::Codec<Celsius> {
  Celsius decode(std::string_view bytes) const {
    const auto at = bytes.find('@');
    if (at == std::string_view::npos) throw rivus::RecordError("no station");
    return {rivus::Codec<double>{}.decode(bytes.substr(0, at)), std::string(bytes.substr(at + 1))};
  }
  void encode(const Celsius& c, std::string& out) const {
    rivus::Codec<double>{}.encode(c.degrees, out);
    out += '@';
    out += c.station;
  }
};

namespace {

class CollectingEmitter final : public rivus::Emitter {
 public:
  using rivus::Emitter::emit;
  void emit(const Record& out) override {
    data.emplace_back(out.data);
    seqs.push_back(out.seq);
  }
  std::vector<std::string> data;
  std::vector<std::uint64_t> seqs;
};

// Runs a stage made by `factory` over `inputs` (seq = index) and returns what it emitted.
CollectingEmitter run(const std::function<std::unique_ptr<rivus::Stage>()>& factory,
                      const std::vector<std::string>& inputs) {
  std::vector<Record> records;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    records.push_back(Record{inputs[i], i, 0, 0});
  }
  auto stage = factory();
  CollectingEmitter out;
  stage->process(Batch(records), out);
  return out;
}

TEST(CodecTest, NumbersRoundTripAsDecimalText) {
  std::string s;
  rivus::Codec<std::int64_t>{}.encode(-42, s);
  EXPECT_EQ(s, "-42");
  EXPECT_EQ(rivus::Codec<std::int64_t>{}.decode("-42"), -42);
  s.clear();
  rivus::Codec<double>{}.encode(0.1, s);
  EXPECT_EQ(rivus::Codec<double>{}.decode(s), 0.1);
  EXPECT_EQ(rivus::Codec<std::uint8_t>{}.decode("255"), 255);
  EXPECT_THROW(rivus::Codec<std::uint8_t>{}.decode("256"), rivus::RecordError);
  EXPECT_THROW(rivus::Codec<int>{}.decode("12x"), rivus::RecordError);
  EXPECT_THROW(rivus::Codec<int>{}.decode(""), rivus::RecordError);
}

TEST(CodecTest, BoolIsTrueOrFalse) {
  std::string s;
  rivus::Codec<bool>{}.encode(true, s);
  EXPECT_EQ(s, "true");
  EXPECT_TRUE(rivus::Codec<bool>{}.decode("1"));
  EXPECT_FALSE(rivus::Codec<bool>{}.decode("false"));
  EXPECT_THROW(rivus::Codec<bool>{}.decode("yes"), rivus::RecordError);
}

TEST(CodecTest, TriviallyCopyableTypesAreTheirBytes) {
  std::string s;
  rivus::Codec<Pair>{}.encode(Pair{1, -2}, s);
  ASSERT_EQ(s.size(), sizeof(Pair));
  const Pair p = rivus::Codec<Pair>{}.decode(s);
  EXPECT_EQ(p.a, 1);
  EXPECT_EQ(p.b, -2);
  EXPECT_THROW(rivus::Codec<Pair>{}.decode("abc"), rivus::RecordError);
}

TEST(CodecTest, ConceptsTellWhichTypesHaveCodecs) {
  static_assert(rivus::HasDefaultCodec<std::string>);
  static_assert(rivus::HasDefaultCodec<std::int64_t>);
  static_assert(rivus::HasDefaultCodec<Pair>);
  static_assert(rivus::HasDefaultCodec<Celsius>);
  static_assert(!rivus::HasDefaultCodec<Point>);
  static_assert(rivus::CodecFor<PointCodec, Point>);
  static_assert(!rivus::CodecFor<PointCodec, Pair>);
}

TEST(FunctionStageTest, MapReturningStringEmitsOneRecordPerInput) {
  auto out =
      run(rivus::function_stage_factory([](std::string_view s) { return std::string(s) + "!"; }),
          {"a", "b"});
  EXPECT_EQ(out.data, (std::vector<std::string>{"a!", "b!"}));
  EXPECT_EQ(out.seqs, (std::vector<std::uint64_t>{0, 1}));
}

TEST(FunctionStageTest, MapReturningStringViewEmitsTheView) {
  auto out = run(rivus::function_stage_factory([](std::string_view s) { return s.substr(1); }),
                 {"abc", "de"});
  EXPECT_EQ(out.data, (std::vector<std::string>{"bc", "e"}));
}

TEST(FunctionStageTest, OptionalResultFilters) {
  auto out =
      run(rivus::function_stage_factory([](std::string_view s) -> std::optional<std::string> {
            if (s.size() % 2 == 0) return std::nullopt;
            return std::string(s);
          }),
          {"a", "bb", "ccc"});
  EXPECT_EQ(out.data, (std::vector<std::string>{"a", "ccc"}));
  EXPECT_EQ(out.seqs, (std::vector<std::uint64_t>{0, 2}));
}

TEST(FunctionStageTest, VectorResultEmitsMany) {
  auto out = run(rivus::function_stage_factory([](std::string_view s) {
                   return std::vector<std::string>(s.size(), std::string(s));
                 }),
                 {"x", "", "yy"});
  EXPECT_EQ(out.data, (std::vector<std::string>{"x", "yy", "yy"}));
  EXPECT_EQ(out.seqs, (std::vector<std::uint64_t>{0, 2, 2}));
}

TEST(FunctionStageTest, RecordArgumentSeesTheSeq) {
  auto out = run(rivus::function_stage_factory([](const Record& r) {
                   return std::string(r.data) + "@" + std::to_string(r.seq);
                 }),
                 {"a", "b"});
  EXPECT_EQ(out.data, (std::vector<std::string>{"a@0", "b@1"}));
}

TEST(FunctionStageTest, TypedNumbersDecodeAndEncode) {
  auto out = run(rivus::function_stage_factory([](std::int64_t i) { return i * i; }), {"3", "-4"});
  EXPECT_EQ(out.data, (std::vector<std::string>{"9", "16"}));
}

TEST(FunctionStageTest, TypedStageThrowsRecordErrorOnBadInput) {
  auto stage = rivus::function_stage_factory([](std::int64_t i) { return i; })();
  std::vector<Record> records{Record{"nope"}};
  CollectingEmitter out;
  EXPECT_THROW(stage->process(Batch(records), out), rivus::RecordError);
}

TEST(FunctionStageTest, UserCodecObjectAppliesToItsType) {
  auto out = run(rivus::function_stage_factory(
                     [](Point p) {
                       p.x *= 2;
                       p.label += "!";
                       return p;
                     },
                     PointCodec{}),
                 {"1.5,2,a"});
  EXPECT_EQ(out.data, (std::vector<std::string>{"3,2,a!"}));
}

TEST(FunctionStageTest, UserCodecSpecialisationIsPickedUp) {
  auto out = run(rivus::function_stage_factory([](const Celsius& c) {
                   return std::optional<Celsius>(Celsius{c.degrees + 1, c.station});
                 }),
                 {"20.5@oslo"});
  EXPECT_EQ(out.data, (std::vector<std::string>{"21.5@oslo"}));
}

TEST(FunctionStageTest, TypedVectorOfTriviallyCopyable) {
  auto out = run(rivus::function_stage_factory([](std::int32_t n) {
                   std::vector<Pair> v;
                   for (std::int32_t i = 0; i < n; ++i) v.push_back(Pair{n, i});
                   return v;
                 }),
                 {"2"});
  ASSERT_EQ(out.data.size(), 2u);
  const Pair second = rivus::Codec<Pair>{}.decode(out.data[1]);
  EXPECT_EQ(second.a, 2);
  EXPECT_EQ(second.b, 1);
}

TEST(FunctionStageTest, FilterPassesRecordsUnchanged) {
  auto out = run(rivus::filter_stage_factory([](std::int64_t i) { return i % 3 == 0; }),
                 {"1", "3", "6", "7"});
  EXPECT_EQ(out.data, (std::vector<std::string>{"3", "6"}));
  EXPECT_EQ(out.seqs, (std::vector<std::uint64_t>{1, 2}));
}

TEST(FunctionStageTest, MutableLambdaKeepsStatePerStageObject) {
  auto factory = rivus::function_stage_factory(
      [n = 0](std::string_view s) mutable { return std::string(s) + std::to_string(++n); });
  EXPECT_EQ(run(factory, {"a", "b"}).data, (std::vector<std::string>{"a1", "b2"}));
  EXPECT_EQ(run(factory, {"c"}).data, (std::vector<std::string>{"c1"}));  // a fresh worker
}

TEST(FunctionStageTest, StageInfoIsATransformWithTheGivenName) {
  const rivus::StageInfo info =
      rivus::function_stage_info("upper", "upper-cases", [](std::string s) {
        for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        return s;
      });
  EXPECT_EQ(info.name, "upper");
  EXPECT_EQ(info.role, rivus::StageRole::kTransform);
  EXPECT_EQ(run(info.make_stage, {"abc"}).data, (std::vector<std::string>{"ABC"}));
}

}  // namespace
