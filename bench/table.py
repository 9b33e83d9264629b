"""The bench report as a plain-text table: one row per figure, with its target."""

from __future__ import annotations

from typing import Any

__all__ = ["table"]

Row = tuple[str, str, str, str]


def _load(figures: dict[str, Any]) -> str:
    load = figures.get("load_average_at_start")
    return f"{load[0]:.1f}" if load else "-"


def _ms(figures: dict[str, Any]) -> str:
    return (
        f"p50 {figures['p50_ms']:.1f}, p90 {figures['p90_ms']:.1f}, "
        f"p99 {figures['p99_ms']:.1f}, max {figures['max_ms']:.1f} ms"
    )


def _open_loop(figures: dict[str, Any]) -> str:
    errors = sum(figures["errors"].values())
    return (
        f"{_ms(figures)} ({figures['achieved_per_s']:.0f}/s done, {errors} errors; "
        f"client lag p99 {figures['client_lag']['p99_ms']:.1f} ms)"
    )


def _operations(ops: dict[str, Any]) -> list[Row]:
    starter, burst, checks = ops["starter"], ops["burst"], ops["checks"]
    load = _load(ops)
    wrong = len(checks["results_wrong"])
    return [
        (
            f"operations: POST report -> 202, open loop {starter['offered_per_s']:.0f}/s "
            f"for {starter['seconds']:.0f} s",
            _open_loop(starter) + f"; drained {starter['drain_seconds']:.1f} s later",
            "p50 <= 10, p99 <= 50 ms",
            load,
        ),
        (
            f"operations: burst of {burst['operations']} from {burst['clients']} clients "
            "to all Succeeded",
            f"{burst['operations_per_s']:.0f} ops/s ({burst['seconds']:.2f} s); "
            f"start p50 {burst['start']['p50_ms']:.1f}, p99 {burst['start']['p99_ms']:.1f} ms",
            ">= 250 ops/s",
            load,
        ),
        (
            "operations: CPU per operation in the burst",
            ", ".join(
                f"{part} {ms:.2f}"
                for part, ms in sorted(
                    burst.get("cpu_ms_per_operation", {}).items(), key=lambda kv: -kv[1]
                )
                if ms >= 0.05
            )
            + " ms",
            "-",
            load,
        ),
        (
            "operations: checks",
            f"{checks['states']} of {checks['operations']}; "
            f"{checks['results_checked'] - wrong}/{checks['results_checked']} results right; "
            f"tree peak RSS {ops['tree_peak_rss_mb']:.0f} MB",
            "all Succeeded, rows == input",
            load,
        ),
    ]


def _cpu_bound(cpu: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    real = cpu.get("real_app")
    if real:
        busy = real["busy"]
        rows.append(
            (
                f"real app, CPU-bound partition ({real['busy_rows']} rows): status GET 100/s",
                _open_loop(busy["status_get"])
                + f" (idle p99 {real['idle']['status_get']['p99_ms']:.1f})",
                "p99 <= 10 ms",
                _load(real),
            )
        )
        rows.append(
            (
                "real app, CPU-bound partition: POST report 20/s",
                _open_loop(busy["starter"])
                + f" (idle p99 {real['idle']['starter']['p99_ms']:.1f})",
                "p99 <= 50 ms",
                _load(real),
            )
        )
    bench_app = cpu.get("bench_app")
    if bench_app:
        rows.append(
            (
                "bench app, spin: status GET (closed loop, 1 client)",
                f"p50 {bench_app['busy_p50_ms']:.1f}, p99 {bench_app['busy_p99_ms']:.1f} ms "
                f"(idle p50 {bench_app['idle_p50_ms']:.1f}, p99 {bench_app['idle_p99_ms']:.1f})",
                "p99 <= 10 ms",
                _load(bench_app),
            )
        )
        rows.append(
            (
                "bench app, spin: starter POST 20/s",
                _open_loop(bench_app["busy_starter"]),
                "p99 <= 50 ms",
                _load(bench_app),
            )
        )
    return rows


def _bench_app_rows(
    ours: dict[str, Any], dbos: dict[str, Any], ratios: dict[str, Any]
) -> list[Row]:
    rows: list[Row] = []
    hello = ours.get("hello")
    if hello:
        dbos_hello = dbos.get("hello_sequence5", {}).get("orchestrations_per_s")
        versus = (
            f"; DBOS {dbos_hello:.0f}/s (x{ratios['hello_sequence5']:.2f})" if dbos_hello else ""
        )
        rows.append(
            (
                f"HelloSequence5, {hello['batch']} by {hello['clients']} keep-alive clients",
                f"{hello['orchestrations_per_s']:.0f} orch/s (rounds {hello['rounds']}){versus}",
                ">= 500 orch/s",
                _load(hello),
            )
        )
    for steps, figures in ours.get("sequence", {}).get("runs", {}).items():
        dbos_seq = dbos.get("sequence", {}) if steps == "1000" else {}
        versus = f"; DBOS {dbos_seq['seconds']:.2f} s" if dbos_seq else ""
        rows.append(
            (
                f"{steps} sequential activities",
                f"{figures['seconds']:.2f} s ({figures['us_per_step']:.0f} us/step){versus}",
                "<= 1 s" if steps == "1000" else "linear",
                _load(ours["sequence"]),
            )
        )
    for count, fan in ours.get("fanout", {}).get("runs", {}).items():
        rows.append(
            (
                f"fan-out/fan-in of {int(count):,}",
                f"{fan['seconds']:.2f} s ({fan['activities_per_s']:.0f}/s); "
                f"tree peak RSS {fan['tree_peak_rss_mb']:.0f} MB "
                f"({fan['tree_processes']} processes)",
                "<= 5 s" if count == "10000" else "<= 8 s, < 500 MB",
                _load(fan),
            )
        )
    lat = ours.get("starter")
    if lat:
        rows.append(
            (
                f"bench app starter POST -> 202, {lat['clients']} clients, "
                f"{lat['offered_per_s']:.0f}/s offered (closed loop)",
                f"p50 {lat['p50_ms']:.1f} ms, p99 {lat['p99_ms']:.1f} ms "
                f"({lat['achieved_per_s']:.0f}/s done)",
                "p50 <= 3, p99 <= 15 ms",
                _load(lat),
            )
        )
    for status in ours.get("status", {}).values():
        rows.append(
            (
                f"status GET, {status['finished_instances']} finished instances",
                f"{status['requests_per_s']:.0f} req/s, RSS {status['host_rss_mb']:.0f} MB "
                f"(peak {status['host_peak_rss_mb']:.0f})",
                ">= 3000 req/s, < 300 MB",
                _load(status),
            )
        )
    return rows


def table(report: dict[str, Any]) -> str:
    """Every figure of the report, one line each, with its target and the load average."""
    ours = report["durablehost"]
    rows: list[Row] = []
    if "operations" in ours:
        rows += _operations(ours["operations"])
    if "cpu_bound" in ours:
        rows += _cpu_bound(ours["cpu_bound"])
    rows += _bench_app_rows(ours, report.get("dbos", {}), report.get("ratios", {}))
    if "error" in report.get("dbos", {}):
        rows.append(("DBOS comparison", f"not run: {report['dbos']['error']}", "-", "-"))
    header: Row = ("workload", "durablehost", "target", "load")
    widths = [max(len(row[i]) for row in [*rows, header]) for i in range(4)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * width for width in widths))
    lines += [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    return "\n".join(lines)
