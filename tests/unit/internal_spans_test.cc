// InternalSpans: INTERNAL spans from call events, nested under the SERVER
// span of the thread and each other; the open calls a request is made in;
// abandoned calls as errors. Events are built here as the kernel sends them
// (bpf/uprobe_trace.h); the kernel's stack map is a fake.
#include <unistd.h>

#include <cstring>
#include <map>
#include <vector>

#include <gtest/gtest.h>

#include "agent/kernel/event_reader.h"
#include "agent/trace/internal_spans.h"

namespace hoptrace {
namespace {

constexpr uint32_t kTid = 7;
const uint32_t kPid = static_cast<uint32_t>(getpid());
enum : uint32_t { kHandle = 1, kValidate = 2, kRender = 3 };

class InternalSpansTest : public ::testing::Test {
 protected:
  InternalSpansTest()
      : processes_("host"),
        spans_(
            &processes_,
            [this](uint32_t id) -> const uprobes::FunctionInfo* {
              auto it = functions_.find(id);
              return it == functions_.end() ? nullptr : &it->second;
            },
            [this](uint32_t pid, uint32_t tid, uint64_t, uint64_t) -> std::optional<SpanContextRecord> {
              if (pid == kPid && tid == kTid && serving_) return server_;
              return std::nullopt;
            },
            [this](uint32_t, uint64_t) { return stack_; },
            [this](Span s) { out_.push_back(std::move(s)); }, Options(), IdGenerator(42)) {
    server_.trace_id.bytes[0] = 0xaa;
    server_.span_id.bytes[0] = 0x55;
    server_.flags = kTraceFlagSampled;
  }
  static InternalSpanOptions Options() {
    InternalSpanOptions o;
    o.min_duration_ns = 100;
    return o;
  }

  // frames: (entry_ns, function) outermost first.
  hu_call_event Event(std::vector<std::pair<uint64_t, uint32_t>> frames, uint32_t index,
                      uint64_t end_ns) {
    hu_call_event e{};
    e.hdr.type = HT_EV_FUNC_CALL;
    e.hdr.pid = kPid;
    e.hdr.tid = kTid;
    e.hdr.ts_enter_ns = frames[index].first;
    e.hdr.ts_exit_ns = end_ns;
    e.context_id = kTid;
    e.index = static_cast<uint16_t>(index);
    e.depth = static_cast<uint16_t>(frames.size());
    for (size_t i = 0; i < frames.size(); ++i) {
      e.frames[i].entry_ns = frames[i].first;
      e.frames[i].function_id = frames[i].second;
      e.frames[i].tid = kTid;
    }
    return e;
  }
  const Span& Named(const std::string& name) {
    for (const Span& s : out_) {
      if (s.name == name) return s;
    }
    ADD_FAILURE() << "no span " << name;
    return out_.front();
  }

  std::map<uint32_t, uprobes::FunctionInfo> functions_{
      {kHandle, {.name = "Shop::handle", .symbol = "_ZN4Shop6handleEv", .file = "/srv/shop"}},
      {kValidate, {.name = "Shop::validate", .symbol = "_ZN4Shop8validateEv", .file = "/srv/shop"}},
      {kRender, {.name = "Shop::render", .symbol = "_ZN4Shop6renderEv", .file = "/srv/shop"}}};
  SpanContextRecord server_;
  bool serving_ = true;
  std::optional<hu_stack> stack_;
  std::vector<Span> out_;
  ProcessRegistry processes_;
  InternalSpans spans_;
};

TEST_F(InternalSpansTest, NestsCallsUnderTheServingSpanAndEachOther) {
  const std::vector<std::pair<uint64_t, uint32_t>> f{
      {1000, kHandle}, {2000, kValidate}, {3000, kRender}};
  spans_.OnCall(Event(f, 2, 4000), false);
  spans_.OnCall(Event({f[0], f[1]}, 1, 5000), false);
  serving_ = false;  // the handle's SERVER span was decided at its first inner call
  spans_.OnCall(Event({f[0]}, 0, 6000), false);
  ASSERT_EQ(out_.size(), 3u);
  const Span& handle = Named("Shop::handle");
  const Span& validate = Named("Shop::validate");
  const Span& render = Named("Shop::render");
  EXPECT_EQ(handle.parent_span_id, server_.span_id);
  EXPECT_EQ(validate.parent_span_id, handle.span_id);
  EXPECT_EQ(render.parent_span_id, validate.span_id);
  for (const Span* s : {&handle, &validate, &render}) {
    EXPECT_EQ(s->trace_id, server_.trace_id);
    EXPECT_EQ(s->kind, SpanKind::kInternal);
    EXPECT_EQ(s->status, StatusCode::kUnset);
    const AttrValue* name = FindAttribute(s->attributes, "code.function.name");
    ASSERT_NE(name, nullptr);
    EXPECT_EQ(std::get<std::string>(*name), s->name);
  }
  EXPECT_EQ(render.end_unix_nano - render.start_unix_nano, 1000u);
  EXPECT_EQ(handle.end_unix_nano - handle.start_unix_nano, 5000u);
  EXPECT_EQ(spans_.open_contexts(), 0u);  // nothing left open
  EXPECT_EQ(spans_.stats().with_server_parent, 1u);
}

TEST_F(InternalSpansTest, RequestMadeInsideACallIsItsChild) {
  hu_stack st{};
  st.depth = 2;
  st.frames[0] = {1000, 0, kHandle, kTid};
  st.frames[1] = {2000, 0, kValidate, kTid};
  stack_ = st;
  auto in_validate = spans_.InnermostOpen(kPid, kTid, 2500);
  auto in_handle = spans_.InnermostOpen(kPid, kTid, 1500);  // before validate began
  ASSERT_TRUE(in_validate && in_handle);
  EXPECT_EQ(in_validate->parent_span_id, in_handle->span_id);
  EXPECT_EQ(in_handle->parent_span_id, server_.span_id);
  EXPECT_FALSE(spans_.InnermostOpen(kPid, kTid, 500));  // before any call
  // The calls end: their spans carry the ids the request's parent got.
  spans_.OnCall(Event({{1000, kHandle}, {2000, kValidate}}, 1, 3000), false);
  spans_.OnCall(Event({{1000, kHandle}}, 0, 4000), false);
  EXPECT_EQ(Named("Shop::validate").span_id, in_validate->span_id);
  EXPECT_EQ(Named("Shop::handle").span_id, in_handle->span_id);
  stack_.reset();
  EXPECT_FALSE(spans_.InnermostOpen(kPid, kTid, 2500));
}

TEST_F(InternalSpansTest, AbandonedCallsAreErrorsWithTheExceptionType) {
  hu_call_event e =
      Event({{1000, kHandle}, {2000, kValidate}, {3000, kRender}, {3950, kRender}}, 1, 4000);
  e.hdr.type = HT_EV_FUNC_ABANDONED;
  e.flags = HU_F_THROWN;
  std::strcpy(e.exception, "N4Shop10OutOfStockE");
  spans_.OnCall(e, true);
  // validate and the outer render; the inner render (50 ns) is under the threshold.
  ASSERT_EQ(out_.size(), 2u);
  for (const Span& s : out_) {
    EXPECT_EQ(s.status, StatusCode::kError);
    EXPECT_EQ(s.status_message, "exception Shop::OutOfStock");
    ASSERT_EQ(s.events.size(), 1u);
    EXPECT_EQ(s.events[0].name, "exception");
    EXPECT_EQ(std::get<std::string>(*FindAttribute(s.events[0].attributes, "exception.type")),
              "Shop::OutOfStock");
    EXPECT_EQ(s.events[0].time_unix_nano, s.end_unix_nano);
  }
  EXPECT_EQ(Named("Shop::render").parent_span_id, Named("Shop::validate").span_id);
  // handle is still open (it caught the exception); it ends normally later.
  spans_.OnCall(Event({{1000, kHandle}}, 0, 5000), false);
  EXPECT_EQ(Named("Shop::handle").status, StatusCode::kUnset);
  EXPECT_EQ(Named("Shop::validate").parent_span_id, Named("Shop::handle").span_id);
  EXPECT_EQ(spans_.open_contexts(), 0u);
}

TEST_F(InternalSpansTest, APythonFunctionLeftByAnExceptionIsAnErrorWithItsClass) {
  constexpr uint32_t kLogin = 4 | HU_FUNCTION_PY, kCheck = 5 | HU_FUNCTION_PY;
  uprobes::FunctionInfo login{.name = "login", .symbol = "login", .file = "app.py"};
  login.python = true;
  uprobes::FunctionInfo check{.name = "check_password", .symbol = "check_password", .file = "app.py"};
  check.python = true;
  functions_[kLogin] = login;
  functions_[kCheck] = check;
  // The kernel sends tp_name as it is ("PasswordRejected"): no demangling.
  hu_call_event e = Event({{1000, kLogin}, {2000, kCheck}}, 1, 3000);
  e.flags = HU_F_PY_RAISED;
  std::strcpy(e.exception, "PasswordRejected");
  spans_.OnCall(e, false, CodeLocation{"/srv/app.py", 42});
  spans_.OnCall(Event({{1000, kLogin}}, 0, 4000), false,
                CodeLocation{"/srv/app.py", 30});  // login caught it
  const Span& c = Named("check_password");
  EXPECT_EQ(c.status, StatusCode::kError);
  EXPECT_EQ(c.status_message, "exception PasswordRejected");
  ASSERT_EQ(c.events.size(), 1u);
  EXPECT_EQ(std::get<std::string>(*FindAttribute(c.events[0].attributes, "exception.type")),
            "PasswordRejected");
  EXPECT_EQ(c.parent_span_id, Named("login").span_id);
  EXPECT_EQ(Named("login").status, StatusCode::kUnset);
  EXPECT_TRUE(Named("login").events.empty());
}

TEST_F(InternalSpansTest, APythonSpanSaysWhereItsFunctionIsDefined) {
  constexpr uint32_t kLogin = 4 | HU_FUNCTION_PY, kCheck = 5 | HU_FUNCTION_PY;
  uprobes::FunctionInfo login{.name = "login", .symbol = "login", .file = "app.py"};
  login.python = true;
  uprobes::FunctionInfo check{.name = "check", .symbol = "check", .file = "app.py"};
  check.python = true;
  functions_[kLogin] = login;
  functions_[kCheck] = check;
  // One spec (app.py:check) matched in two files: each call says its own.
  spans_.OnCall(Event({{1000, kLogin}, {2000, kCheck}}, 1, 3000), false,
                CodeLocation{"/srv/app.py", 12});
  spans_.OnCall(Event({{1000, kLogin}, {3500, kCheck}}, 1, 3900), false,
                CodeLocation{"/srv/admin/app.py", 7});
  spans_.OnCall(Event({{1000, kLogin}}, 0, 4000), false, CodeLocation{"/srv/app.py", 30});
  ASSERT_EQ(out_.size(), 3u);
  auto where = [](const Span& s) {
    return std::make_pair(std::get<std::string>(*FindAttribute(s.attributes, "code.file.path")),
                          std::get<int64_t>(*FindAttribute(s.attributes, "code.line.number")));
  };
  EXPECT_EQ(where(out_[0]), std::make_pair(std::string("/srv/app.py"), int64_t{12}));
  EXPECT_EQ(where(out_[1]), std::make_pair(std::string("/srv/admin/app.py"), int64_t{7}));
  EXPECT_EQ(where(out_[2]), std::make_pair(std::string("/srv/app.py"), int64_t{30}));
  for (const Span& s : out_) {
    EXPECT_EQ(std::get<std::string>(*FindAttribute(s.attributes, "code.function.name")), s.name);
    // The spec's FILE says nothing code.file.path does not.
    EXPECT_EQ(FindAttribute(s.attributes, "hoptrace.code.file"), nullptr);
  }
}

TEST_F(InternalSpansTest, AnAbandonedPythonCallHasNoLocation) {
  constexpr uint32_t kLogin = 4 | HU_FUNCTION_PY;
  uprobes::FunctionInfo login{.name = "login", .symbol = "login", .file = "app.py"};
  login.python = true;
  functions_[kLogin] = login;
  hu_call_event e = Event({{1000, kHandle}, {2000, kLogin}}, 1, 3000);
  e.hdr.type = HT_EV_FUNC_ABANDONED;
  spans_.OnCall(e, true, CodeLocation{"/srv/app.py", 12});  // not its: only a return's
  const Span& s = Named("login");
  EXPECT_EQ(FindAttribute(s.attributes, "code.file.path"), nullptr);
  EXPECT_EQ(FindAttribute(s.attributes, "code.line.number"), nullptr);
}

// The record the kernel sends for a Python function's return reaches the
// handler with its location; one too short for what its flag says does not.
class PythonCallRecords : public ::testing::Test, public EventHandler {
 protected:
  void OnConnOpen(const ConnEvent&) override {}
  void OnData(const DataEvent&) override {}
  void OnConnClose(const ConnEvent&) override {}
  void OnProcExec(const ProcEvent&) override {}
  void OnProcExit(const ProcEvent&) override {}
  void OnFuncCall(const FuncCallEvent& ev) override {
    calls_.push_back(ev.python ? std::string(ev.python->path, ev.python->path_len) + ":" +
                                     std::to_string(ev.python->line)
                               : std::string("native"));
  }
  std::vector<uint8_t> Record(size_t size, uint16_t flags) {
    std::vector<uint8_t> rec(size);
    auto* e = reinterpret_cast<hu_py_call_event*>(rec.data());
    e->call.hdr.type = HT_EV_FUNC_CALL;
    e->call.depth = 1;
    e->call.flags = flags;
    if (size >= sizeof(hu_py_call_event)) {
      std::strcpy(e->path, "/srv/app.py");
      e->path_len = 11;
      e->line = 12;
    }
    return rec;
  }
  std::vector<std::string> calls_;
  EventReader reader_{this};
};

TEST_F(PythonCallRecords, CarryTheFileAndLineOfTheFunction) {
  reader_.Dispatch(Record(sizeof(hu_py_call_event), HU_F_PY_WHERE));
  reader_.Dispatch(Record(sizeof(hu_call_event), 0));
  reader_.Dispatch(Record(sizeof(hu_call_event), HU_F_PY_WHERE));  // cut short: dropped
  EXPECT_EQ(calls_, (std::vector<std::string>{"/srv/app.py:12", "native"}));
  EXPECT_EQ(reader_.stats().malformed, 1u);
}

TEST_F(InternalSpansTest, AProcessThatExitsLeavesNoOpenContext) {
  hu_stack st{};
  st.depth = 1;
  st.frames[0] = {1000, 0, kHandle, kTid};
  stack_ = st;
  ASSERT_TRUE(spans_.InnermostOpen(kPid, kTid, 2000));
  EXPECT_EQ(spans_.open_contexts(), 1u);
  spans_.OnProcessExit(kPid);
  EXPECT_EQ(spans_.open_contexts(), 0u);
  ASSERT_TRUE(spans_.InnermostOpen(kPid, kTid, 2000));
  spans_.Tick(1000 + Options().open_ttl_ns + 1);  // never seen to end: expires
  EXPECT_EQ(spans_.open_contexts(), 0u);
  EXPECT_EQ(spans_.stats().open_expired, 1u);
  EXPECT_TRUE(out_.empty());
}

}  // namespace
}  // namespace hoptrace
