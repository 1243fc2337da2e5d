// Status and Result, and the propagation macros every room uses.
#include "rivus/base/status.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <string>

namespace rivus {
namespace {

Result<int> parse_digit(char c) {
  if (c < '0' || c > '9') return Status::InvalidArgument(std::string("'") + c + "' is not a digit");
  return c - '0';
}

Status check_even(char c) {
  RIVUS_ASSIGN_OR_RETURN(const int d, parse_digit(c));
  if (d % 2 != 0) return Status::InvalidArgument("odd");
  return Status::Ok();
}

Result<int> twice(char c) {
  RIVUS_RETURN_IF_ERROR(check_even(c));
  RIVUS_ASSIGN_OR_RETURN(int d, parse_digit(c));
  return 2 * d;
}

TEST(StatusTest, NamedConstructorsCarryTheirCodeAndMessage) {
  EXPECT_TRUE(Status::Ok().ok());
  const Status s = Status::NotFound("no segment 'x'");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.to_string(), "not found: no segment 'x'");
  EXPECT_EQ(s.with_context("stat").message(), "stat: no segment 'x'");
  EXPECT_EQ(s.with_context("stat").code(), StatusCode::kNotFound);
  EXPECT_EQ(Status::IoError("open f", ENOENT).message(), "open f: No such file or directory");
}

TEST(StatusTest, MacrosReturnTheFirstErrorAndPassValuesOn) {
  EXPECT_EQ(twice('4').value(), 8);
  const Result<int> odd = twice('3');
  ASSERT_FALSE(odd.ok());
  EXPECT_EQ(odd.status().message(), "odd");
  const Result<int> bad = twice('x');
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message(), "'x' is not a digit");
}

TEST(StatusTest, AnOkResultHasAnOkStatus) {
  const Result<std::string> r = std::string("v");
  EXPECT_TRUE(r.ok());
  EXPECT_TRUE(r.status().ok());
  EXPECT_EQ(*r, "v");
}

}  // namespace
}  // namespace rivus
