#include "rivus/runtime/spec_json.h"

#include <nlohmann/json.hpp>

#include "rivus/base/text.h"

namespace rivus {
namespace {

using nlohmann::json;

json batch_doc(const BatchSpec& b) {
  return {{"records", b.records}, {"bytes", b.bytes}, {"linger", format_duration(b.linger)}};
}

json retry_doc(const RetrySpec& r) {
  return {
      {"max_retries", r.max_retries}, {"delay", format_duration(r.delay)}, {"backoff", r.backoff}};
}

json restart_doc(const RestartSpec& r) {
  return {{"max_restarts", r.max_restarts},
          {"window", format_duration(r.window)},
          {"backoff", format_duration(r.backoff)}};
}

json key_by_doc(const KeyBySpec& k) {
  switch (k.kind) {
    case KeyByKind::kNone:
      return nullptr;
    case KeyByKind::kRecord:
      return "record";
    case KeyByKind::kKey:
      return "key";
    case KeyByKind::kField:
      break;
  }
  return {{"field", k.field}, {"separator", std::string(1, k.separator)}};
}

json params_doc(const Params& p) {
  json out = json::object();
  for (const auto& [name, value] : p.values()) {
    std::visit([&out, &n = name](const auto& v) { out[n] = v; }, value);
  }
  return out;
}

Params params_from(const json& j) {
  Params p;
  for (const auto& [name, v] : j.items()) {
    if (v.is_boolean()) {
      p.set(name, v.get<bool>());
    } else if (v.is_number_integer()) {
      p.set(name, v.get<std::int64_t>());
    } else if (v.is_number()) {
      p.set(name, v.get<double>());
    } else if (v.is_string()) {
      p.set(name, v.get<std::string>());
    } else if (v.is_array()) {
      p.set(name, v.get<std::vector<std::string>>());
    }
  }
  return p;
}

// Reads a duration written by format_duration(); throws json::other_error naming `what`.
std::chrono::nanoseconds duration_at(const json& j, const char* what) {
  std::chrono::nanoseconds d{0};
  if (!parse_duration(j.at(what).get<std::string>(), &d)) {
    throw json::other_error::create(501, std::string(what) + " is not a duration", &j);
  }
  return d;
}

KeyBySpec key_by_from(const json& j) {
  KeyBySpec k;
  if (j.is_null()) return k;
  if (j.is_string()) {
    const std::string kind = j.get<std::string>();
    if (kind == "record") {
      k.kind = KeyByKind::kRecord;
    } else if (kind == "key") {
      k.kind = KeyByKind::kKey;
    } else {
      throw json::other_error::create(501, "key_by '" + kind + "' is unknown", &j);
    }
    return k;
  }
  k.kind = KeyByKind::kField;
  k.field = j.at("field").get<std::uint32_t>();
  const std::string sep = j.at("separator").get<std::string>();
  if (sep.size() != 1) throw json::other_error::create(501, "key_by.separator is not 1 byte", &j);
  k.separator = sep[0];
  return k;
}

}  // namespace

std::string batch_json(const BatchSpec& b) { return batch_doc(b).dump(); }
std::string retry_json(const RetrySpec& r) { return retry_doc(r).dump(); }
std::string restart_json(const RestartSpec& r) { return restart_doc(r).dump(); }
std::string key_by_json(const KeyBySpec& k) { return key_by_doc(k).dump(); }

Result<KeyBySpec> key_by_from_json(std::string_view text) {
  try {
    return key_by_from(json::parse(text));
  } catch (const json::exception& e) {
    return Status::Corrupt(std::string("key_by: ") + base::json_error_text(e.what()));
  }
}

std::string stage_json(const StageSpec& s) {
  const json doc = {
      {"name", s.name},
      {"use", s.use},
      {"with", params_doc(s.with)},
      {"workers", s.workers},
      {"batch", batch_doc(s.batch)},
      {"key_by", key_by_doc(s.key_by)},
      {"ordered", s.ordered},
      {"timeout", format_duration(s.timeout)},
      {"limits", {{"memory", s.limits.memory}, {"cpu", format_duration(s.limits.cpu)}}},
      {"retry", retry_doc(s.retry)},
      {"restart", restart_doc(s.restart)},
  };
  return doc.dump();
}

Result<StageSpec> stage_from_json(std::string_view text, const StageInfo* info) {
  StageSpec st;
  try {
    const json s = json::parse(text);
    st.name = s.at("name").get<std::string>();
    st.use = s.at("use").get<std::string>();
    st.info = info;
    st.with = params_from(s.at("with"));
    st.workers = s.at("workers").get<std::uint32_t>();
    const json& batch = s.at("batch");
    st.batch.records = batch.at("records").get<std::uint32_t>();
    st.batch.bytes = batch.at("bytes").get<std::uint64_t>();
    st.batch.linger = duration_at(batch, "linger");
    st.key_by = key_by_from(s.at("key_by"));
    st.ordered = s.at("ordered").get<bool>();
    st.timeout = duration_at(s, "timeout");
    st.limits.memory = s.at("limits").at("memory").get<std::uint64_t>();
    st.limits.cpu = duration_at(s.at("limits"), "cpu");
    const json& retry = s.at("retry");
    st.retry.max_retries = retry.at("max_retries").get<std::uint32_t>();
    st.retry.delay = duration_at(retry, "delay");
    st.retry.backoff = retry.at("backoff").get<double>();
    const json& restart = s.at("restart");
    st.restart.max_restarts = restart.at("max_restarts").get<std::uint32_t>();
    st.restart.window = duration_at(restart, "window");
    st.restart.backoff = duration_at(restart, "backoff");
  } catch (const json::exception& e) {
    return Status::Corrupt(std::string("stage settings: ") + base::json_error_text(e.what()));
  }
  return st;
}

}  // namespace rivus
