"""`sloth-runner tune`'s report as text: each recommendation with its evidence, the changes to
the file (and those left alone, with why), and how the numbers were derived. `-o json` prints
the same document whole."""

from __future__ import annotations

from sloth_runner.analytics.tuning import duration_text, seconds

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def render(report: dict[str, Any], diff: str | None, write: bool) -> str:
    out: list[str] = []
    add = out.append
    host = report["host"]
    unmatched = report.get("unmatched_runs") or 0
    add(f"tune {report['file']}: {report['runs']} runs in the last {report['since']}"
        + (f" ({unmatched} more of a file of that name recorded a relative path from another "
           "directory: not used)" if unmatched else ""))
    memory = (f", {size(host['memory_kb'])} memory (budget {size(host['memory_budget_kb'])})"
              if host.get("memory_kb") else "")
    add(f"host: {cores(host['cores'])}{memory}"
        + "".join(f"; {n}" for n in host.get("notes") or ()))
    for wf in report["workflows"]:
        add("")
        add(f"workflow {wf['name']} ({short(wf['location'])}): {wf['runs']} runs")
        for t in wf["tasks"]:
            _task(add, t)
        _workflow(add, wf)
    add("")
    _changes(add, report["changes"], write, report.get("written", False))
    first = [t["name"] for wf in report["workflows"] for t in wf["tasks"]
             if t["timeout"].get("note")]
    if first:
        note = next(t["timeout"]["note"] for wf in report["workflows"] for t in wf["tasks"]
                    if t["timeout"].get("note"))
        add(f"note: {', '.join(first)} would get a timeout for the first time; {note}")
    if diff is not None:
        add("")
        add(diff.rstrip("\n") if diff else "(the file would not change)")
    add("")
    add("how:")
    for key, text in report["method"].items():
        add(f"  {key}: {text}")
    return "\n".join(out) + "\n"


def _task(add: Any, t: dict[str, Any]) -> None:
    add(f"  task {t['name']} ({short(t['location'])}): {t['attempts']} attempts in "
        f"{t['runs']} runs")
    timeout = t["timeout"]
    current = "none" if timeout["current_s"] is None else duration_text(timeout["current_s"])
    if timeout["recommended_s"] is None:
        shown = f"{current} (no change)"
    elif timeout["action"] == "keep":
        shown = f"{current} (keep)"
    else:
        shown = f"{current} -> {duration_text(timeout['recommended_s'])} ({timeout['action']})"
    add(f"    timeout    {shown:<24} {timeout['reason']}")
    retries = t["retries"]
    shown = (f"{retries['current']} (keep)" if retries["action"] == "keep" else
             f"{retries['current']} -> {retries['recommended']} ({retries['action']})")
    add(f"    retries    {shown:<24} {retries['reason']}")
    res = t["resources"]
    if res["peak_rss_kb"] or res["cpu_cores"]:
        rss = (f"peak RSS {size(res['peak_rss_kb'])}" if res["peak_rss_kb"] else
               "peak RSS not above sloth-runner's own")
        add(f"    resources  {rss}, {cores(res['cpu_cores'])} busy (its processes)")


def _workflow(add: Any, wf: dict[str, Any]) -> None:
    par = wf["max_parallel_tasks"]
    current = par["current"] if par["current"] is not None else \
        f"none ({par['evidence'].get('effective_current', 8)})" if par["evidence"] else "none"
    shown = (f"{current} (keep)" if par["action"] in ("keep", "none") else
             f"{current} -> {par['recommended']} ({par['action']})")
    add(f"  max_parallel_tasks  {shown}: {par['reason']}")
    ev = par["evidence"]
    res = {t["name"]: t["resources"] for t in wf["tasks"]}
    heavy = [", ".join(f"{n} {size(res[n]['peak_rss_kb'])}" for n in ev.get("heaviest_memory")
                       or ()),
             ", ".join(f"{n} {cores(res[n]['cpu_cores'])}" for n in ev.get("heaviest_cpu")
                       or ())]
    if any(heavy):
        add(f"  {'':<20}heaviest: {'; '.join(h for h in heavy if h)}")
    path = wf["critical_path"]
    if path["tasks"]:
        unknown = (f"; no duration for {', '.join(path['unknown'])} (counted as 0)"
                   if path["unknown"] else "")
        names = path["tasks"]
        if len(names) > 12:  # all of it is in -o json
            names = names[:5] + [f"... {len(names) - 10} more ..."] + names[-5:]
        add(f"  critical path       {' -> '.join(names)}: {seconds(path['duration_s'])} "
            f"by median durations ({len(path['tasks'])} tasks){unknown}")
    exp = wf["expected"]
    if exp["recommended_s"] is not None:
        observed = (f"; observed median {seconds(exp['observed_median_s'])} over "
                    f"{exp['observed_runs']} successful runs" if exp["observed_runs"] else "")
        add(f"  expected run time   {seconds(exp['recommended_s'])} with max_parallel_tasks "
            f"{exp['recommended_limit']} (now: {seconds(exp['current_s'])} with "
            f"{exp['current_limit']}{observed})")


def _changes(add: Any, changes: list[dict[str, Any]], write: bool, written: bool) -> None:
    made = [c for c in changes if c["status"] == "edit"]
    skipped = [c for c in changes if c["status"] != "edit"]
    if not changes:
        add("changes: none: the file already has what its history recommends")
        return
    verb = "made" if written else "to make"
    add(f"changes: {len(made)} {verb}" + (f", {len(skipped)} left alone" if skipped else ""))
    for c in made:
        add(f"  line {c.get('line', '?'):<5} {_what(c)}: {c['from']} -> {c['to']}")
    for c in skipped:
        add(f"  left alone: {_what(c)} ({c['from']} -> {c['to']}): {c['why']}")
    if made and not write:
        add("run with --diff to see the edit, --write to make it")
    elif made and written:
        add("written; the file loads and defines the new values")


def _what(c: dict[str, Any]) -> str:
    return (f"task {c['task']} {c['setting']}" if c["task"] else
            f"workflow {c['workflow']} {c['setting']}")


def short(location: str) -> str:
    """`file:line` with only the file's name (the report names the file once, in full)."""
    file, _, line = location.rpartition(":")
    return f"{file.rsplit('/', 1)[-1]}:{line}" if file else location


def size(kb: float | None) -> str:
    if not kb:
        return "0"
    if kb < 1024:
        return f"{kb:.0f} KiB"
    if kb < 1024 * 1024:
        return f"{kb / 1024:.0f} MiB"
    return f"{kb / 1024 / 1024:.1f} GiB"


def cores(n: float) -> str:
    return f"{n:g} core" + ("" if n == 1 else "s")
