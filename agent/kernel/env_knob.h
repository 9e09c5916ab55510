// The HOPTRACE_* variables that make the agent act as another kernel would
// (HOPTRACE_READ_AT_EXIT=off: as a kernel without bpf_task_pt_regs): the
// tests and the kernel matrix use them to reach every capture path on one
// kernel. Each takes one of a few fixed words.
#ifndef HOPTRACE_AGENT_KERNEL_ENV_KNOB_H
#define HOPTRACE_AGENT_KERNEL_ENV_KNOB_H

#include <initializer_list>
#include <optional>
#include <string_view>

namespace hoptrace {

// The word `name` is set to, when it is one of `words`; nullopt when it is
// unset or empty. Any other value is logged (a warning, once per variable)
// and counts as unset: a typo must not pass for the path it meant to force.
std::optional<std::string_view> EnvKnob(const char* name,
                                        std::initializer_list<std::string_view> words);

}  // namespace hoptrace

#endif  // HOPTRACE_AGENT_KERNEL_ENV_KNOB_H
