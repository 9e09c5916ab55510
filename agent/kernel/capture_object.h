// The capture object, bpf/socket_trace.bpf.c, in one of its two builds
// (bpf/CMakeLists.txt) behind one type:
//   - with kernel-side trace contexts (bpf/head_scan.bpf.h): what context
//     propagation needs; its scans are bpf_loop callbacks (Linux 5.17);
//   - capture only (built with HT_NO_KERNEL_CTX): loads on every kernel
//     hoptrace supports (5.10 and later), and is what runs whenever the
//     kernel does not decide contexts.
// LoaderOptions::kernel_context picks the build; it is set only where
// ProbeKernelContext() finds what the contexts need.
#pragma once

#include <functional>
#include <memory>
#include <string>

struct bpf_object;
struct bpf_object_skeleton;
struct bpf_map;

namespace hoptrace {

struct LoaderOptions;

// Whether this kernel can run the kernel-side trace contexts (probed, never
// by version). ok false: `why` says what is missing, in one sentence.
// HOPTRACE_KERNEL_CONTEXT=off in the environment answers as a kernel without
// bpf_loop would (tests of the older kernels' route on a newer one).
struct KernelContextSupport {
  bool ok = false;
  std::string why;
};
KernelContextSupport ProbeKernelContext();

class CaptureObject {
 public:
  // Opens the build `options` asks for and sets its knobs (rodata, ring
  // buffer size) from them: the one place, so that `hoptrace check`
  // verifies exactly what `run` loads. nullptr, errno set, if it cannot.
  static std::unique_ptr<CaptureObject> Open(const LoaderOptions& options);
  ~CaptureObject();
  CaptureObject(const CaptureObject&) = delete;
  CaptureObject& operator=(const CaptureObject&) = delete;

  // libbpf's result (0 or a negative errno).
  int Load();
  int Attach();

  bpf_object* obj() const { return obj_; }
  // The object's map `name`, nullptr if this build has none.
  bpf_map* Map(const char* name) const;
  // "capture+ctx" or "capture": how `hoptrace check --verbose` names it.
  const char* name() const { return kernel_context_ ? "capture+ctx" : "capture"; }

 private:
  CaptureObject(bpf_object_skeleton* skeleton, bpf_object* obj, bool kernel_context,
                std::function<void()> destroy)
      : skeleton_(skeleton), obj_(obj), kernel_context_(kernel_context),
        destroy_(std::move(destroy)) {}
  template <typename Skel>
  static std::unique_ptr<CaptureObject> OpenAs(const LoaderOptions& options);

  bpf_object_skeleton* skeleton_;
  bpf_object* obj_;
  bool kernel_context_;
  std::function<void()> destroy_;  // the skeleton's own destroy
};

}  // namespace hoptrace
