#!/usr/bin/python3
"""Renders the kernel matrix's rows (cell.py's JSON, run_vm.sh's times) into
README.md between <!-- kernel-matrix:begin --> and <!-- kernel-matrix:end -->.
  /usr/bin/python3 tests/matrix/render_table.py [--print] [RESULTS_DIR] [README]
--print: only print the table (scripts/test.sh does, after a run). Defaults: build/tests/matrix/results, README.md. Rows in the order of
kernels.conf, then the host. Debian's python3, standard library only."""
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BEGIN, END = "<!-- kernel-matrix:begin -->", "<!-- kernel-matrix:end -->"


def cell(entry, yes="yes"):
    if entry.get("ok"):
        return yes
    detail = re.sub(r"\s+", " ", entry.get("detail", "")).replace("|", "\\|")
    return f"**no**: {detail[:220]}"


SHORT = {"test_thread_per_request_python_to_python": "py→py",
         "test_chain_nginx_python_node_without_header": "nginx→py→node→py",
         "test_chain_without_header_starts_new_trace": "py→py read-only",
         "test_starts_without_kernel_contexts_where_bpf_loop_is_missing":
             "started without kernel contexts"}


def capture(row):
    if not row["capture"]["ok"] or "capture_tests" not in row:
        return cell(row["capture"])
    t = row["capture_tests_ok"]
    if not t["ok"]:
        detail = t["detail"]
        for long, short in SHORT.items():
            detail = detail.replace(long, short)
        return cell({"ok": False, "detail": detail})
    return "yes (" + ", ".join(SHORT.get(n, n) for n in row["capture_tests"]) + ")"


def context(row):
    # A kernel that lacks what the contexts need: said by check, not a failure.
    c = row["kernel_context"]
    if not c["ok"] and c["detail"].startswith("off: ") and "load failed" not in c["detail"]:
        return "off: " + c["detail"].removeprefix("off: ")
    return cell(c)


def injection(row):
    if row["injection"].get("offered") is False:
        return "off: " + row["injection"]["detail"].removeprefix("off: ")
    # The propagation object's load failure says more than the tests that
    # then fail on it.
    p = row.get("propagation_object", {"ok": True})
    if not p["ok"]:
        return cell({"ok": False, "detail": "propagation object: " + p["detail"]})
    if row["injection"]["ok"]:
        return "yes (" + ", ".join(SHORT.get(t, t) for t in row["chain_tests"]) + ": tree and traceparent exact)"
    detail = row["injection"]["detail"]
    for long, short in SHORT.items():
        detail = detail.replace(long, short)
    return cell({"ok": False, "detail": detail})


def left(row):
    bad = [row[k]["detail"] for k in ("leftover_programs", "leftover_netns") if k in row and not row[k]["ok"]]
    return "nothing" if not bad else "**" + ", ".join(bad) + "**"


def headroom(row):
    most = row.get("verifier_most")
    if not most:
        return "—"
    # The costliest program of the whole default load, as share of 1M.
    obj, (prog, n) = max(most.items(), key=lambda kv: kv[1][1] or 0)
    return "?" if n is None else f"{n / 10000:.1f} % ({obj} {prog})"


def ready(row):
    """`hoptrace check`'s time, the agent's ready time, and the scale the
    tests' waits got from it (rows from before cell.py measured them show
    the ready time alone)."""
    r = row.get("agent_ready_s")
    text = "—" if r is None else f"{r:.1f} s"
    if "check_s" in row:
        text = f"{row['check_s']:.0f} s / {text}"
    if "time_scale" in row:
        text += f" (waits ×{row['time_scale']:g})"
    return text


def guard(row):
    g = row["read_guard"]
    if g["needed"] is None:
        return "not probed"
    return "needed (FIONREAD answers 0)" if g["needed"] else "not needed (FIONREAD exact)"


def main():
    args = [a for a in sys.argv[1:] if a != "--print"]
    only_print = len(args) < len(sys.argv) - 1
    results = Path(args[0]) if len(args) > 0 else ROOT / "build/tests/matrix/results"
    readme = Path(args[1]) if len(args) > 1 else ROOT / "README.md"
    order = [l.split()[0] for l in (Path(__file__).parent / "kernels.conf").read_text().splitlines()
             if l.strip() and not l.startswith("#")] + ["host"]
    releases = {l.split()[0]: l.split()[1] for l in (Path(__file__).parent / "kernels.conf")
                .read_text().splitlines() if l.strip() and not l.startswith("#")}
    lines = ["| kernel | capture | kernel-side context | injection (chain tests) | read guard | "
             "network probes | verifier, most | left behind | check / agent ready | boot / total |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name in order:
        f = results / f"{name}.json"
        if not f.exists():
            continue
        row = json.loads(f.read_text())
        times = results / f"{name}.times.json"
        if times.exists():
            t = json.loads(times.read_text())
            took = f"{float(t['boot_s']):.0f} s / {float(t['total_s']):.0f} s"
        else:
            took = f"— / {row['cell_s']:.0f} s"
        who = f"Debian {name[-2:]} ({releases[name]})" if name in releases else "host"
        lines.append("| " + " | ".join([
            f"{who}: {row['kernel']}",
            capture(row),
            context(row),
            injection(row),
            guard(row),
            cell(row["net_probes"]),
            headroom(row),
            left(row),
            ready(row),
            took,
        ]) + " |")
    if only_print:
        print("\n".join(lines))
        return
    text = readme.read_text()
    if BEGIN not in text or END not in text:
        sys.exit(f"render_table: {readme} has no {BEGIN} ... {END} section")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(head + BEGIN + "\n" + "\n".join(lines) + "\n" + END + tail)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
