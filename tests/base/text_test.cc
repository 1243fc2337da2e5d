// printable(): what reaches a terminal of user text (spec contents, reasons, paths) and
// json_error_text(): nlohmann-json's messages without their library tag.
#include "rivus/base/text.h"

#include <gtest/gtest.h>

namespace rivus::base {
namespace {

TEST(PrintableTest, ValidTextIsUnchanged) {
  EXPECT_EQ(printable("plain ascii, with\ttab\nand newline"),
            "plain ascii, with\ttab\nand newline");
  EXPECT_EQ(printable("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
            "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
  EXPECT_EQ(printable(""), "");
  EXPECT_EQ(printable("back\\slash"), "back\\slash");
}

TEST(PrintableTest, LogLinesKeepToOneLine) {
  EXPECT_EQ(printable("a\n[00:00:00.000] [supervisor] info: forged", false),
            "a\\x0a[00:00:00.000] [supervisor] info: forged");
  EXPECT_EQ(printable("tab\tstays", false), "tab\tstays");
}

TEST(PrintableTest, ControlBytesAreEscaped) {
  // An escape sequence that would clear the screen, a carriage return that would overwrite.
  EXPECT_EQ(printable("a\x1b[2Jb"), "a\\x1b[2Jb");
  EXPECT_EQ(printable("x\ry"), "x\\x0dy");
  EXPECT_EQ(printable(std::string_view("n\0ul", 4)), "n\\x00ul");
  EXPECT_EQ(printable("\x7f"), "\\x7f");
  // C1 controls, written as valid UTF-8 (U+009B is a one-character CSI).
  EXPECT_EQ(printable("\xc2\x9b"), "\\xc2\\x9b");
}

TEST(PrintableTest, InvalidUtf8IsEscapedBytewise) {
  EXPECT_EQ(printable("caf\xe9"), "caf\\xe9");                       // Latin-1
  EXPECT_EQ(printable("\xe2\x82"), "\\xe2\\x82");                    // cut short
  EXPECT_EQ(printable("\xc0\xaf"), "\\xc0\\xaf");                    // overlong '/'
  EXPECT_EQ(printable("\xed\xa0\x80"), "\\xed\\xa0\\x80");           // a surrogate
  EXPECT_EQ(printable("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80");  // beyond U+10FFFF
  EXPECT_EQ(printable("\x80ok"), "\\x80ok");                         // a stray continuation byte
}

TEST(ValidUtf8Test, AcceptsShortestFormsAndRefusesTheRest) {
  EXPECT_TRUE(valid_utf8(""));
  EXPECT_TRUE(valid_utf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
  EXPECT_FALSE(valid_utf8("caf\xe9"));           // Latin-1
  EXPECT_FALSE(valid_utf8("\xc0\xaf"));          // overlong '/'
  EXPECT_FALSE(valid_utf8("\xed\xb0\x80"));      // a surrogate (U+DC00)
  EXPECT_FALSE(valid_utf8("\xf4\x90\x80\x80"));  // beyond U+10FFFF
  EXPECT_FALSE(valid_utf8("ab\xe2\x82"));        // cut short
}

TEST(CopyBoundedTest, NeverCutsInsideACharacter) {
  char out[6];
  copy_bounded("abcdefgh", out, sizeof out);
  EXPECT_STREQ(out, "abcde");
  copy_bounded("abcd\xc3\xa9", out, sizeof out);  // "abcdé": 6 bytes, 5 fit: é is dropped whole
  EXPECT_STREQ(out, "abcd");
  copy_bounded(
      "ab\xe2\x82\xac"
      "cd",
      out, sizeof out);  // "ab€cd": € fits whole
  EXPECT_STREQ(out, "ab\xe2\x82\xac");
  copy_bounded("abc\xe2\x82\xac", out, sizeof out);  // "abc€": the cut € is dropped
  EXPECT_STREQ(out, "abc");
  copy_bounded("short", out, sizeof out);
  EXPECT_STREQ(out, "short");
}

TEST(JsonErrorTextTest, DropsTheLibraryTag) {
  EXPECT_EQ(json_error_text("[json.exception.parse_error.101] parse error at line 1, column 2: x"),
            "parse error at line 1, column 2: x");
  EXPECT_EQ(json_error_text("no tag here"), "no tag here");
}

}  // namespace
}  // namespace rivus::base
