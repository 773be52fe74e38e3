"""Render docs/runbooks/<system>.md (one section per alert) and docs/runbooks/README.md (the index).

Catalogue text goes in through redline.generate.markdown: one paragraph each, no raw HTML (`<script>`
shows as text), sources and queries in code spans and fences they cannot close; the schema has already
refused links other than http(s) and relative ones.
"""

from __future__ import annotations

from redline.generate.alerts import SIDE_WORDS, target_phrase
from redline.generate.conventions import (
    SLO_BUDGET,
    burn_rate_windows,
    dashboard_url,
    runbook_anchor,
    runbook_path,
    slo_record,
    tiers_by_severity,
)
from redline.generate.humanize import format_value, humanize_duration, humanize_percentage
from redline.generate.markdown import code_fence, code_span, inline, link_text
from redline.generate.model import (
    Catalogue,
    Runbook,
    Slo,
    System,
    Threshold,
    format_duration,
    parse_duration,
)
from redline.generate.render.common import markdown_header


def _common(runbook: Runbook) -> list[str]:
    lines = ["**Likely causes**", ""]
    lines += [f"- {inline(cause)}" for cause in runbook.causes]
    lines += ["", "**First steps**", ""]
    lines += [f"{number}. {inline(action)}" for number, action in enumerate(runbook.actions, start=1)]
    lines += ["", f"**Escalation**: {inline(runbook.escalation)}", ""]
    return lines


def threshold_section(catalogue: Catalogue, levels: list[Threshold]) -> list[str]:
    first = levels[0]
    lines = [
        f"## {first.alert_name}",
        "",
        f"_{inline(first.summary)}._",
        "",
        f"**What it means**: {inline(first.runbook.meaning)}",
        "",
        "**Threshold**",
        "",
    ]
    for level in levels:
        lines.append(
            f"- `{level.severity}` when {inline(_lower_first(first.measures))} is "
            f"{SIDE_WORDS[level.operator]} **{format_value(level.unit, level.value)}** for {level.for_} "
            f"(target: {target_phrase(level)}). "
            f'Source {code_span(level.source)}: "{inline(level.quote)}"'
        )
    lines += ["", *detection_lines(levels)]
    lines += [
        "",
        "**Signal** (PromQL; the alert fires while this condition holds):",
        "",
        *code_fence(first.expr if len(levels) == 1 else first.signal, "promql"),
        "",
    ]
    if first.record:
        lines += [f"Recorded as `{first.record}`.", ""]
    lines += [f"**Dashboard**: {dashboard_url(catalogue.settings, first.system, first.id)}", ""]
    return lines + _common(first.runbook)


def detection_lines(levels: list[Threshold]) -> list[str]:
    """How long a sustained breach takes to fire each level (checked by the generated promtool tests)."""
    out = []
    for level in levels:
        window, hold = level.rate_window_seconds, level.for_
        total = format_duration(level.detection_seconds)
        if window and level.fixture is not None and level.fixture.kind == "silence":
            how = (
                f"the last sample leaves the {format_duration(window)} window, then the condition holds for "
                f"`for` ({hold})"
            )
        elif window:
            how = (
                f"the {format_duration(window)} rate window fills with breaching samples, then the condition "
                f"holds for `for` ({hold}); a breach far past the threshold crosses sooner"
            )
        else:
            how = f"`for` ({hold}) from the first breaching sample"
        prefix = f"`{level.severity}`: " if len(levels) > 1 else ""
        out.append(f"- {prefix}**{total}**: {how}.")
    return [
        "**Detection time** for a sustained breach that starts from a healthy value (add up to one scrape "
        "interval and one rule evaluation; checked by the generated promtool tests):",
        "",
        *out,
    ]


def _lower_first(text: str) -> str:
    """'Mean cycle time' -> 'mean cycle time', but 'CPU used' stays."""
    return text[0].lower() + text[1:] if text[1:2].islower() else text


def slo_section(catalogue: Catalogue, slo: Slo) -> list[str]:
    lines = [
        f"## {slo.alert_name}",
        "",
        f"_{inline(slo.summary)}._",
        "",
        f"**What it means**: {inline(slo.runbook.meaning)}",
        "",
        f"**Objective**: {humanize_percentage(slo.objective)} over {slo.period} "
        f"(error budget {humanize_percentage(slo.error_budget)}). "
        f'Source {code_span(slo.source)}: "{inline(slo.quote)}"',
        "",
        "**Burn-rate alerts** (both windows of a row must burn faster than the factor times the budget):",
        "",
        "| severity | factor | long window | short window | error ratio above | for "
        "| detection at 2x the factor |",
        "|---|---|---|---|---|---|---|",
    ]
    for severity, tiers in tiers_by_severity(catalogue).items():
        for tier in tiers:
            at_double = parse_duration(tier.long_window) // 2 + parse_duration(tier.for_)
            lines.append(
                f"| {severity} | {tier.factor:g}x | {tier.long_window} | {tier.short_window} | "
                f"{humanize_percentage(tier.factor * slo.error_budget)} | {tier.for_} | "
                f"{format_duration(at_double)} |"
            )
    windows = ", ".join(burn_rate_windows(catalogue))
    lines += ["", *_after_an_outage(catalogue, slo)]
    lines += [
        "**Detection time** for a sustained error ratio r: a tier fires once its long window averages above "
        "factor x budget, i.e. after long window x factor / (r / budget) + `for` (r above factor x budget; "
        "the short window fills sooner). A breach just past the objective only ever spends the budget "
        "slowly: the threshold alerts of this system say it within their `for`.",
        "",
        f"**Error ratio**, one per environment: the alert's `env` says which one spends its budget "
        f'(PromQL, recorded as `{slo_record("<window>")}{{slo="{slo.slo_label}"}}` for {windows}'
        f" and {slo.period}; budget left in `{SLO_BUDGET}`):",
        "",
        *code_fence(slo.error_ratio_for("5m"), "promql"),
        "",
        f"**Dashboard**: {dashboard_url(catalogue.settings, slo.system, slo.id)}",
        "",
    ]
    return lines + _common(slo.runbook)


def _after_an_outage(catalogue: Catalogue, slo: Slo) -> list[str]:
    """Why the fastest page often arrives as the system's Down alert resolves, and why a young stack
    sees it more often: the paragraph an on-call reads when the page looks like an echo."""
    fastest = max(catalogue.settings.burn_rates, key=lambda tier: tier.factor)
    ratio = fastest.factor * slo.error_budget
    if ratio >= 1:
        return []
    long_s = parse_duration(fastest.long_window)
    share = fastest.factor * long_s / parse_duration(slo.period)
    return [
        f"**Right after an outage**: this {fastest.severity} page often arrives just as the system's "
        "Down alert resolves. While Down fires, Alertmanager holds this alert back (an inhibition of "
        f"alertmanager/alertmanager.yml); the failures stay in the {fastest.short_window} window after the "
        f"service recovers, and `for: {fastest.for_}` has long passed, so the page goes out when Down "
        f"resolves. An outage longer than {humanize_duration(ratio * long_s)} "
        f"({humanize_percentage(ratio)} of {fastest.long_window}) spends {humanize_percentage(share)} of "
        f"the {slo.period} budget, so the page is right: read the budget left on the dashboard before "
        f"deciding what it needs. On a stack younger than {fastest.long_window}, the windows hold only "
        "the stack's lifetime, so a failure in its first minutes weighs more and a short start-up "
        "failure can raise this page on its own.",
        "",
    ]


def render_system_runbook(catalogue: Catalogue, system: System) -> str:
    lines = [
        markdown_header([f"thresholds/{system.file}"]),
        "",
        f"# Runbook: {inline(system.name)}",
        "",
        f'Alerts of `system="{system.id}"`, from the handover {code_span(system.source)}. '
        "Each section: what the alert",
        "means, its threshold and the quoted source line, likely causes, first steps and escalation.",
        "",
    ]
    for alert_name in system.alert_names():
        lines.append(f"- [{alert_name}](#{runbook_anchor(alert_name)})")
    lines.append("")
    done: set[str] = set()
    for threshold in system.thresholds:
        if threshold.alert_name in done:
            continue
        done.add(threshold.alert_name)
        lines += threshold_section(
            catalogue, [t for t in system.thresholds if t.alert_name == threshold.alert_name]
        )
    for slo in system.slos:
        lines += slo_section(catalogue, slo)
    return "\n".join(lines).rstrip() + "\n"


def render_index(catalogue: Catalogue) -> str:
    lines = [
        markdown_header(["thresholds/*.yml"]),
        "",
        "# Runbooks",
        "",
        "One page per system, one section per alert (alert names link to their section).",
        "",
    ]
    for system in catalogue.systems:
        lines += [f"## [{link_text(system.name)}]({system.id}.md)", ""]
        for alert_name in system.alert_names():
            lines.append(f"- [{alert_name}]({system.id}.md#{runbook_anchor(alert_name)})")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def render_runbooks(catalogue: Catalogue) -> dict[str, str]:
    """Renderer: one runbook page per system, plus the index."""
    files = {runbook_path(s.id): render_system_runbook(catalogue, s) for s in catalogue.systems}
    files["docs/runbooks/README.md"] = render_index(catalogue)
    return files
