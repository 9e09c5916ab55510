// `hoptrace run`: wires loader -> event reader -> connection tracker ->
// trace stitcher -> span pipeline -> sinks, and runs the capture loop until
// asked to stop.
#pragma once

#include <atomic>

#include "agent/cli/settings.h"

namespace hoptrace {

// Runs until *stop becomes true (or the configured duration passes).
// Returns an exit code. Start-up problems (bad settings, missing
// privileges, kernel features) throw StartupError with what to do.
int RunAgent(const Settings& settings, const std::atomic<bool>* stop);

}  // namespace hoptrace
