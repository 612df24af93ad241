"""The results of ``python -m bench http`` as markdown tables in ``docs/performance.md``.

Spec: authward GitHub issue 10 item 1 (report the ratio to the floor per scenario, engine and
concurrency; the flood's p99 ratio and 5xx count; the soak's RSS growth).

:func:`render` turns the results document (``bench/results/http.json``) into markdown;
:func:`update_document` puts it between the ``<!-- http-results:start -->`` and
``<!-- http-results:end -->`` markers of the document and leaves everything else as it is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

__all__ = ["END", "START", "render", "update_document"]

START: Final = "<!-- http-results:start -->"
END: Final = "<!-- http-results:end -->"
ENGINE_NAMES: Final = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}

Json = Mapping[str, Any]


def _ms(value: object) -> str:
    if not isinstance(value, int | float):
        return "-"
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def _rate(value: object) -> str:
    if not isinstance(value, int | float):
        return "-"
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def _ratio(numerator: object, denominator: object) -> str:
    if not isinstance(numerator, int | float) or not isinstance(denominator, int | float):
        return "-"
    if denominator == 0:
        return "-"
    return f"{numerator / denominator:.2f}"


def _errors(run: Json | None) -> str:
    if run is None:
        return "-"
    if run.get("failure"):
        return "failed"
    statuses = {k: v for k, v in run.get("statuses", {}).items() if not k.startswith("2")}
    sockets = dict(run.get("socket_errors", {}))
    total = sum(statuses.values()) + sum(sockets.values())
    if not total:
        return "0"
    parts = [f"{code}x{n}" for code, n in sorted(statuses.items())]
    parts += [f"{name}x{n}" for name, n in sorted(sockets.items())]
    return f"{total} ({', '.join(parts)})"


def _mark(run: Json | None) -> str:
    if run is None:
        return ""
    marks = ""
    if run.get("exhausted"):
        marks += "†"
    if run.get("broken_chains"):
        marks += "‡"
    return marks


def _pct(value: object) -> str:
    return f"{value * 100:.0f}%" if isinstance(value, int | float) else "-"


def _cpu(value: object) -> str:
    return f"{value:.2f}" if isinstance(value, int | float) else "-"


def _meta_line(meta: Json) -> str:
    machine = meta.get("machine", {})
    versions = meta.get("versions", {})
    dirty = " (with uncommitted changes)" if meta.get("git_dirty") else ""
    return (
        f"_Run {meta.get('timestamp', '?')} at commit `{str(meta.get('git_commit', '?'))[:12]}`"
        f"{dirty}; {machine.get('cpu_model', '?')}, {machine.get('cpus', '?')} cores, "
        f"{machine.get('memory_gb', '?')} GB; Python {versions.get('python', '?')}, "
        f"uvicorn {versions.get('uvicorn', '?')} (loop {meta.get('uvicorn_loop', '?')}, "
        f"http {meta.get('uvicorn_http', '?')}), PostgreSQL {versions.get('postgresql', '?')}, "
        f"SQLite {versions.get('sqlite', '?')}; warm-up {meta.get('warmup', '?')} s, "
        f"window {meta.get('duration', '?')} s._"
    )


def _load_line(runs: Sequence[Json], cpus: object) -> str:
    loads = [r["load_1m"] for r in runs if isinstance(r.get("load_1m"), int | float)]
    if not loads:
        return ""
    line = f"One-minute load average before the runs: {min(loads):.1f} to {max(loads):.1f}"
    if isinstance(cpus, int) and max(loads) > cpus:
        return line + f" (above the {cpus} cores: other work shared the machine)."
    return line + "."


def _matrix(section: Json) -> list[str]:
    runs: Sequence[Json] = section.get("runs", [])
    lines = [
        "### Token endpoint and introspection against the floor",
        "",
        _meta_line(section.get("meta", {})),
        "",
    ]
    load = _load_line(runs, section.get("meta", {}).get("machine", {}).get("cpus"))
    if load:
        lines += [load, ""]
    index = {(r["engine"], r["server"], r["scenario"], r["concurrency"]): r for r in runs}
    engines = list(dict.fromkeys(r["engine"] for r in runs))
    scenarios = list(dict.fromkeys(r["scenario"] for r in runs))
    concurrencies = sorted({int(r["concurrency"]) for r in runs})
    for engine in engines:
        lines += [
            f"#### {ENGINE_NAMES.get(engine, engine)}",
            "",
            "| scenario | c | authward req/s | floor req/s | ratio | authward p50 / p99 ms "
            "| floor p50 / p99 ms | p50 ratio | server CPU s / 1k req (authward / floor) "
            "| errors (authward / floor) | driver CPU (authward / floor run) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for scenario in scenarios:
            for c in concurrencies:
                aw = index.get((engine, "authward", scenario, c))
                fl = index.get((engine, "floor", scenario, c))
                if aw is None and fl is None:
                    continue
                a = aw or {}
                f = fl or {}
                lines.append(
                    f"| {scenario} | {c} | {_rate(a.get('rps'))}{_mark(aw)} "
                    f"| {_rate(f.get('rps'))}{_mark(fl)} | {_ratio(a.get('rps'), f.get('rps'))} "
                    f"| {_ms(a.get('p50_ms'))} / {_ms(a.get('p99_ms'))} "
                    f"| {_ms(f.get('p50_ms'))} / {_ms(f.get('p99_ms'))} "
                    f"| {_ratio(a.get('p50_ms'), f.get('p50_ms'))} "
                    f"| {_cpu(a.get('server_cpu_per_1k'))} / {_cpu(f.get('server_cpu_per_1k'))} "
                    f"| {_errors(aw)} / {_errors(fl)} "
                    f"| {_pct(a.get('driver_share'))} / {_pct(f.get('driver_share'))} |"
                )
        lines.append("")
    notes = []
    if any(r.get("exhausted") for r in runs):
        notes.append(
            "† the run used up what was minted or pre-signed before the window ended (codes, "
            "assertions, proofs); its rate is over the shorter window. `prepared` in the JSON "
            "has the counts."
        )
    if any(r.get("broken_chains") for r in runs):
        notes.append("‡ some refresh chains stopped on an error (see `broken_chains`).")
    failed = [r for r in runs if r.get("failure")]
    for r in failed:
        notes.append(
            f"Failed: {r['engine']} {r['server']} {r['scenario']} c={r['concurrency']}: "
            f"{str(r['failure'])[:200]}"
        )
    for failure in section.get("failures", []):
        notes.append(f"Failed: {failure}")
    if notes:
        lines += [*(f"{n}  " for n in notes), ""]
    return lines


def _flood(section: Json) -> list[str]:
    lines = [
        "### Wrong-secret flood",
        "",
        _meta_line(section.get("meta", {})),
        "",
        "| engine | flooders (from) | legit p99 alone ms | legit p99 flooded ms | p99 ratio "
        "| legit req/s alone / flooded | legit answers flooded | flood answers | flood req/s "
        "| 5xx |",
        "|---|---:|---:|---:|---:|---:|---|---|---:|---:|",
    ]
    for r in section.get("results", []):
        if r.get("failure"):
            lines.append(
                f"| {ENGINE_NAMES.get(r['engine'], r['engine'])} | failed: "
                f"{str(r['failure'])[:120]} ||||||||"
            )
            continue
        answers = ", ".join(f"{k}x{v}" for k, v in sorted(r.get("flood_statuses", {}).items()))
        sockets = r.get("socket_errors", {})
        if sockets:
            answers += "; socket errors " + ", ".join(f"{k}x{v}" for k, v in sockets.items())
        ratio = r.get("p99_ratio")
        loaded = r.get("loaded_p99_ms")
        loaded_text = _ms(loaded) if loaded is not None else "no 2xx"
        legit = ", ".join(f"{k}x{v}" for k, v in sorted(r.get("legit_statuses_loaded", {}).items()))
        lines.append(
            f"| {ENGINE_NAMES.get(r['engine'], r['engine'])} "
            f"| {r['flood_concurrency']} ({r.get('flood_source') or '?'}) "
            f"| {_ms(r.get('unloaded_p99_ms'))} | {loaded_text} "
            f"| {'-' if ratio is None else f'{ratio:.2f}'} "
            f"| {_rate(r.get('unloaded_rps'))} / {_rate(r.get('loaded_rps'))} "
            f"| {legit or '-'} | {answers or '-'} | {_rate(r.get('flood_rps'))} "
            f"| {r.get('server_5xx', 0)} |"
        )
    for failure in section.get("failures", []):
        lines.append(f"\nFailed: {failure}")
    return [*lines, ""]


def _soak(section: Json) -> list[str]:
    lines = [
        "### Soak",
        "",
        _meta_line(section.get("meta", {})),
        "",
        "| engine | seconds | connections per workload | requests | errors "
        "| RSS after first minute MB | RSS at end MB | growth | RSS idle after MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in section.get("results", []):
        if r.get("failure"):
            lines.append(
                f"| {ENGINE_NAMES.get(r['engine'], r['engine'])} | failed: "
                f"{str(r['failure'])[:120]} |||||||"
            )
            continue
        growth = r.get("rss_growth_pct")
        lines.append(
            f"| {ENGINE_NAMES.get(r['engine'], r['engine'])} | {r['seconds']:.0f} "
            f"| {r['concurrency_per_workload']} | {r['requests']} | {r['errors']} "
            f"| {r.get('rss_first_minute_mb', '-')} (at {r.get('rss_first_minute_at_s', '-')} s) "
            f"| {r.get('rss_end_mb', '-')} | {'-' if growth is None else f'{growth:+.1f}%'} "
            f"| {r.get('rss_idle_end_mb', '-')} |"
        )
    for failure in section.get("failures", []):
        lines.append(f"\nFailed: {failure}")
    return [*lines, ""]


def render(results: Json) -> str:
    """The markdown of every section present in ``results``."""
    lines: list[str] = []
    if "matrix" in results:
        lines += _matrix(results["matrix"])
    if "flood" in results:
        lines += _flood(results["flood"])
    if "soak" in results:
        lines += _soak(results["soak"])
    if not lines:
        lines = ["_No results yet: run `make bench-http`._", ""]
    return "\n".join(lines).rstrip() + "\n"


def update_document(path: Path, results: Json) -> None:
    """Replace what lies between the markers of ``path`` with :func:`render` (the markers
    are appended if the document has none)."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    block = f"{START}\n{render(results)}{END}"
    if START in text and END in text:
        head, _, rest = text.partition(START)
        _, _, tail = rest.partition(END)
        text = head + block + tail
    else:
        text = text.rstrip() + ("\n\n" if text else "") + block + "\n"
    path.write_text(text, encoding="utf-8")
