// Text that came from users or from records, made safe to print: what a terminal or a log shows
// of it can neither move the cursor, nor change colours, nor break a line of UTF-8. Any thread.
#pragma once

#include <string>
#include <string_view>

namespace rivus::base {

// `text` with every byte that is not printable UTF-8 written as \xNN: C0 controls other than
// tab (and newline, with `keep_newlines`), DEL, C1 controls (U+0080..U+009F), and bytes that
// are not part of a valid, shortest-form UTF-8 sequence. Backslashes stay as they are. Valid
// printable text is unchanged. Log lines pass keep_newlines = false: one entry, one line.
std::string printable(std::string_view text, bool keep_newlines = true);

// Whether `text` is valid UTF-8: shortest forms only, no surrogates, nothing beyond U+10FFFF.
bool valid_utf8(std::string_view text);

// Copies at most `size - 1` bytes of `text` and a NUL into `out` (a fixed field of the segment),
// cutting before a UTF-8 sequence that would not fit whole rather than inside it.
void copy_bounded(std::string_view text, char* out, std::size_t size);

// nlohmann-json's exception text without its "[json.exception.parse_error.101] " tag, so that a
// message reads in Rivus's words ("parse error at line 1, column 2: ...").
std::string json_error_text(std::string_view what);

}  // namespace rivus::base
