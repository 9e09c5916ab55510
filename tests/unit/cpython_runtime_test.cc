// The CPython offset table (uprobes/cpython) against the real interpreter the
// tests use, Debian's /usr/bin/python3: a child python reads the same fields
// through ctypes (its own _PyRuntime, thread states and current Context) and
// prints them; FindInterpreter must find that interpreter, at that address,
// and the table's offsets must name those fields. Also pins the layout of
// the struct the agent hands the kernel (bpf/runtime_python.h).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstddef>
#include <cstdio>
#include <map>
#include <sstream>
#include <string>

#include "bpf/runtime_python.h"
#include "uprobes/cpython/cpython_runtime.h"

namespace hoptrace::uprobes::cpython {
namespace {

// Prints "key value" lines measured through ctypes, then waits on stdin.
constexpr const char* kProbeScript = R"PY(
import contextvars, ctypes, sys, threading
api = ctypes.pythonapi
api.PyThreadState_Get.restype = ctypes.c_void_p
rt = ctypes.addressof(ctypes.c_void_p.in_dll(api, "_PyRuntime"))
rd = lambda a: ctypes.c_uint64.from_address(a).value
# Every offset (in 8-byte steps) where a field holds the wanted value: the
# table's offset must be one of them.
find = lambda base, want, n=160: ",".join(str(i * 8) for i in range(n) if rd(base + i * 8) == want)
stop, info = threading.Event(), {}
def worker():
    info["ts"] = api.PyThreadState_Get()
    # Only the current thread state holds this thread's state now.
    info["cur"] = find(rt, info["ts"])
    stop.wait()
t = threading.Thread(target=worker); t.start()
while "cur" not in info: pass
ts = api.PyThreadState_Get()
interp = rd(ts + 16)
ctx = contextvars.copy_context()
out = {"version": "%d.%d" % sys.version_info[:2], "runtime": rt,
       "rt_tstate_current": info["cur"], "rt_interp_main": find(rt, interp),
       "interp_threads_head": find(interp, info["ts"]),
       "ts_next": find(info["ts"], ts, 8),
       "ts_native_tid": find(ts, threading.get_native_id(), 64),
       "ts_context": ctx.run(lambda: find(ts, id(ctx), 64))}
for k, v in out.items(): print(k, v)
sys.stdout.flush()
sys.stdin.read()
stop.set()
)PY";

struct Child {
  pid_t pid = -1;
  int in = -1;
  std::map<std::string, std::string> values;
};

Child StartProbe() {
  int to[2], from[2];
  Child c;
  if (pipe(to) || pipe(from)) return c;
  c.pid = fork();
  if (c.pid == 0) {
    dup2(to[0], 0);
    dup2(from[1], 1);
    close(to[1]);
    close(from[0]);
    execl("/usr/bin/python3", "python3", "-c", kProbeScript, nullptr);
    _exit(127);
  }
  close(to[0]);
  close(from[1]);
  c.in = to[1];
  FILE* f = fdopen(from[0], "r");
  char line[256];
  while (c.values.size() < 8 && fgets(line, sizeof(line), f)) {
    std::istringstream s(line);
    std::string k, v;
    s >> k >> v;
    c.values[k] = v;
  }
  fclose(f);
  return c;
}

void Stop(Child& c) {
  if (c.in >= 0) close(c.in);
  if (c.pid > 0) waitpid(c.pid, nullptr, 0);
}

TEST(CPythonRuntime, ChecksTheOffsetTableAgainstTheRealInterpreter) {
  Child c = StartProbe();
  ASSERT_GT(c.pid, 0);
  ASSERT_EQ(c.values.size(), 8u) << "the ctypes probe of /usr/bin/python3 failed";
  std::string why;
  auto in = FindInterpreter(c.pid, &why);
  ASSERT_TRUE(in.has_value()) << why;
  EXPECT_EQ(std::to_string(in->major) + "." + std::to_string(in->minor), c.values["version"]);
  EXPECT_EQ(in->runtime_address, std::stoull(c.values["runtime"]));
  EXPECT_NE(in->copy_current_offset, 0u);
  auto one_of = [&](const char* field, uint32_t offset) {
    std::string list = "," + c.values[field] + ",";
    EXPECT_NE(list.find("," + std::to_string(offset) + ","), std::string::npos)
        << field << ": table says " << offset << ", the interpreter has it at " << c.values[field];
  };
  one_of("rt_tstate_current", in->offsets.rt_tstate_current);
  one_of("rt_interp_main", in->offsets.rt_interp_main);
  one_of("interp_threads_head", in->offsets.interp_threads_head);
  one_of("ts_next", in->offsets.ts_next);
  one_of("ts_native_tid", in->offsets.ts_native_tid);
  one_of("ts_context", in->offsets.ts_context);
  Stop(c);
}

// The offsets the Python function probes read (bpf/uprobe_python.bpf.h),
// given to a /usr/bin/python3 that follows them in its own memory through
// ctypes: the thread state's current frame must be the function running,
// its code's flags must be co_flags (a generator's too), a type's tp_name
// its name. Prints "ok" lines or what differs.
constexpr const char* kFrameScript = R"PY(
import ctypes, sys
ts_cframe, cframe_current, frame_code, code_flags, type_name, frame_previous, code_name, ascii_length, ascii_data, firstlineno = map(int, sys.argv[1:11])
api = ctypes.pythonapi
api.PyThreadState_Get.restype = ctypes.c_void_p
U = ctypes.c_uint64
class Rejected(Exception): pass
def running():
    # No Python call between here and the reads: the current frame is ours.
    ts = api.PyThreadState_Get()
    code = U.from_address(U.from_address(U.from_address(ts + ts_cframe).value + cframe_current).value + frame_code).value
    return code == id(running.__code__)
def caller_name():
    # The name of the calling function, read as the kernel reads it.
    ts = api.PyThreadState_Get()
    frame = U.from_address(U.from_address(ts + ts_cframe).value + cframe_current).value
    up = U.from_address(frame + frame_previous).value
    name = U.from_address(U.from_address(up + frame_code).value + code_name).value
    n = U.from_address(name + ascii_length).value
    return ctypes.string_at(name + ascii_data, n + 1)
def set_running_or_notify_cancel(): return (lambda: caller_name())()
def gen(): yield 1
flags = lambda f: ctypes.c_int.from_address(id(f.__code__) + code_flags).value
name = lambda t: ctypes.c_char_p.from_address(id(t) + type_name).value.decode()
line = lambda f: ctypes.c_int.from_address(id(f.__code__) + firstlineno).value
print("frame", running())
print("flags", flags(running) == running.__code__.co_flags and flags(gen) == gen.__code__.co_flags and bool(flags(gen) & 0x20))
print("tp_name", name(Rejected) == "Rejected" and name(ValueError) == "ValueError")
print("caller", caller_name() == b"<module>\0" and set_running_or_notify_cancel() == b"<lambda>\0")
print("firstlineno", line(running) == running.__code__.co_firstlineno and line(gen) == gen.__code__.co_firstlineno and line(gen) != line(running))
)PY";

TEST(CPythonRuntime, FunctionProbeOffsetsFollowTheRealInterpreter) {
  const Offsets o = *OffsetsFor(3, 11);
  const std::string cmd = "/usr/bin/python3 -c '" + std::string(kFrameScript) + "' " +
                          std::to_string(o.ts_cframe) + " " + std::to_string(o.cframe_current) +
                          " " + std::to_string(o.frame_code) + " " +
                          std::to_string(o.code_flags) + " " + std::to_string(o.type_name) + " " +
                          std::to_string(o.frame_previous) + " " + std::to_string(o.code_name) +
                          " " + std::to_string(o.ascii_length) + " " +
                          std::to_string(o.ascii_data) + " " + std::to_string(o.code_firstlineno);
  FILE* f = popen(cmd.c_str(), "r");
  ASSERT_NE(f, nullptr);
  std::string out;
  char buf[256];
  while (fgets(buf, sizeof(buf), f)) out += buf;
  EXPECT_EQ(pclose(f), 0) << out;
  EXPECT_EQ(out, "frame True\nflags True\ntp_name True\ncaller True\nfirstlineno True\n");
}

TEST(CPythonRuntime, SaysWhyForAProcessWithoutPython) {
  std::string why;
  EXPECT_FALSE(FindInterpreter(getpid(), &why).has_value());
  EXPECT_NE(why.find("no CPython"), std::string::npos) << why;
}

TEST(CPythonRuntime, HasNoOffsetsForUnknownVersions) {
  EXPECT_TRUE(OffsetsFor(3, 11).has_value());
  EXPECT_FALSE(OffsetsFor(3, 12).has_value());
  EXPECT_FALSE(OffsetsFor(2, 7).has_value());
}

TEST(CPythonRuntime, ProcLayoutIsPinned) {
  EXPECT_EQ(sizeof(ht_py_proc), 64u);
  EXPECT_EQ(offsetof(ht_py_proc, runtime), 0u);
  EXPECT_EQ(offsetof(ht_py_proc, rt_tstate_current), 8u);
  EXPECT_EQ(offsetof(ht_py_proc, ts_context), 28u);
  EXPECT_EQ(offsetof(ht_py_proc, ts_cframe), 32u);
  EXPECT_EQ(offsetof(ht_py_proc, ascii_length), 56u);
}

}  // namespace
}  // namespace hoptrace::uprobes::cpython
