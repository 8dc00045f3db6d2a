"""The paper's ablations as named components: each gives the variants to compare with the
full method (paper Tables 3, 4, 9, 10; METHOD.md 4-6).

Every variant is a list of config overrides applied on top of the user's; all variants run
on the very same frozen episodes (the full method's episodes.jsonl).
"""

from __future__ import annotations

import difflib

from sdvicl_bench.errors import ConfigError

FULL = "full method"

COMPONENTS: dict[str, list[tuple[str, list[str]]]] = {
    "adain": [(FULL, []), ("without AdaIN", ["sampler.adain.enabled=false"])],
    "contrast": [(FULL, []), ("without contrast (beta = 1)", ["sampler.attention.contrast=1.0"])],
    "swap_guidance": [(FULL, []), ("without swap guidance", ["sampler.swap.enabled=false"])],
    "temperature": [
        (FULL, []),
        ("without temperature (tau = 1)", ["sampler.attention.temperature=1.0"]),
    ],
    "iwpe": [(f"{FULL} (IWPE)", []), ("feature ensembling", ["sampler.attention.ensemble=mean"])],
    "layers": [
        (f"{FULL} (decoder, all resolutions)", []),
        ("decoder 64x64 only", ["sampler.attention.layers=[up.finest]"]),
    ],
    "qkv": [
        (f"{FULL} (CAB)", []),
        ("DAB", ["sampler.attention.qkv=DAB"]),
        ("CBB", ["sampler.attention.qkv=CBB"]),
        ("DBB", ["sampler.attention.qkv=DBB"]),
    ],
    "inversion": [(f"{FULL} (D from C)", []), ("D from noise", ["sampler.init=noise"])],
}


def variants(component: str) -> list[tuple[str, list[str]]]:
    """[(label, overrides)], the full method first; ConfigError with "did you mean"."""
    if component not in COMPONENTS:
        close = difflib.get_close_matches(component, COMPONENTS, n=1)
        hint = f" Did you mean 'component={close[0]}'?" if close else ""
        raise ConfigError(
            f"Unknown component '{component}'. Choose one of: {', '.join(COMPONENTS)}.{hint}"
        )
    return COMPONENTS[component]


def comparison_markdown(title: str, rows: list[tuple[str, dict]], kind: str = "Ablation") -> str:
    """Markdown table: one row per variant, each metric (scaled) beside its own labelled
    delta column ("Δ iou vs full") to the first row.

    rows: (label, results.json dict), the reference (the full method) first. The heading
    reads "### <kind>: <title> (<task>, <n> prompt(s))".
    """
    full = rows[0][1]
    specs = full["config"]["task"].get("metrics") or {}
    metrics = list(full["metrics"])
    against = "first" if kind != "Ablation" else "full"
    head = ["variant"]
    for m in metrics:
        arrow = "↑" if (specs.get(m) or {}).get("higher_is_better", True) else "↓"
        head += [f"{m} ({arrow})", f"Δ {m} vs {against}"]
    head.append("n")
    prompts = full["config"]["prompts"] or full["config"]["task"]["prompts"]
    lines = [
        f"### {kind}: {title} ({full['task']}, {prompts} prompt(s))",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for label, res in rows:
        cells = [label]
        for m in metrics:
            scale = float((specs.get(m) or {}).get("scale", 1))
            value = res["metrics"][m]["overall"]["mean"] * scale
            base = full["metrics"][m]["overall"]["mean"] * scale
            cells += [f"{value:.4g}", "-" if res is full else f"{value - base:+.3g}"]
        cells.append(str(res["n"]))
        lines.append("| " + " | ".join(cells) + " |")
    if full.get("note"):
        lines += ["", f"Note: {full['note']}"]
    return "\n".join(lines) + "\n"
