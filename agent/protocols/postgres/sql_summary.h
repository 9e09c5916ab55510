// What a span may say about an SQL statement: the text with every literal
// replaced by "?", and the operation and first collection it names.
//
// No value leaves the host (DESIGN.md): string constants ('x', E'x', B'01',
// X'1f', U&'x', $tag$x$tag$), numeric constants (42, 1.5e3, 0x1f) and
// comments (which can carry anything, sqlcommenter tags included) never reach
// the output. Bind parameters ($1) and identifiers ("Users", t1) are kept.
// Text cut short (a capture gap, max_text) is cut at a token boundary; an
// unterminated literal or comment swallows the rest of the input.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace hoptrace::postgres {

struct SqlSummary {
  std::string text;        // sanitized, whitespace runs collapsed to one space
  std::string operation;   // first keyword, upper-cased: "SELECT", "INSERT", ...; "" if none
  std::string collection;  // first table named where the statement says it, as written
                           // ("public.users", "\"Orders\""); "" if none
  bool truncated = false;  // text was cut at max_text
};

SqlSummary SummarizeSql(std::string_view sql, size_t max_text = 2048);

}  // namespace hoptrace::postgres
