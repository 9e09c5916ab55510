// Fuzzes the PostgreSQL parser (script of syscalls: protocol_fuzz.h) and the
// SQL sanitizer (the whole input as a statement): sanitizing is idempotent
// and the text never grows past its bound.
#include "agent/protocols/postgres/postgres_parser.h"
#include "agent/protocols/postgres/sql_summary.h"
#include "tests/fuzz/protocol_fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace hoptrace;
  fuzz::FuzzParser(postgres::kProtocol, data, size);

  const std::string_view sql(reinterpret_cast<const char*>(data), size);
  const postgres::SqlSummary s = postgres::SummarizeSql(sql, 256);
  fuzz::Check(s.text.size() <= 256);
  fuzz::Check(s.operation.size() <= 128 && s.collection.size() <= 128);
  if (!s.truncated) fuzz::Check(postgres::SummarizeSql(s.text, 256).text == s.text);
  (void)postgres::LooksLikeStart(sql);
  return 0;
}
