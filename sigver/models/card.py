"""Model cards: a Markdown summary of a checkpoint generated from its metadata."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from sigver._util import atomic_write
from sigver.models.checkpoint import ModelWeights

__all__ = ["render_model_card", "write_model_card"]


def _pct(v: Any) -> str:
    return "n/a" if v is None else f"{100 * float(v):.2f} %"


def _pair_words(pair: Any) -> str:
    """The card's sentence on a cue's pairwise part ("" without one)."""
    if not pair:
        return ""
    extra = pair.get("extra") or {}
    more = (
        f" and {extra.get('writers', '?')} further writers ({extra.get('source', 'given')})"
        if extra
        else ""
    )
    return (
        "It has a pairwise part (`sigver.pair_cue`): a logistic regression on "
        f"|phi(q) - phi(r)| fitted on {pair.get('n_pairs', '?')} genuine-genuine and "
        f"genuine-skilled pairs of the {len(pair.get('users', []))} calibration writers{more}; "
        + (
            "its mean over the user's references, centred on the references against each other, "
            if pair.get("centred", True)
            else "its mean over the user's references (uncentred) "
        )
        + f"is subtracted with weight {float(pair['weight']):g}. "
    )


def _cue_lines(cue: Any) -> list[str]:
    if not cue or not cue.get("calibration"):
        return []
    fused = cue["calibration"]
    lines = [
        "",
        f"**Forgery cue ({'on' if cue.get('on_by_default') else 'off'} by default).** The model "
        "also carries a writer-independent forgery "
        f"cue (`sigver.forgery_cue`): a logistic probe fitted on {cue.get('n_genuine', '?')} "
        f"genuine signatures and {cue.get('n_forgeries', '?')} skilled forgeries of "
        f"{len(cue.get('users', []))} calibration writers, weight {float(cue['weight']):g}"
        + (" (the pairwise part below decides alone)" if not float(cue["weight"]) else "")
        + (
            ", centred on each user's references (recorded at enrollment). "
            if cue.get("centred")
            else ". "
        )
        + _pair_words(cue.get("pair"))
        + (
            "It is on unless switched off (`--no-forgery-cue`, `Verifier(forgery_cue=False)`, "
            "`$SIGVER_FORGERY_CUE=0`; the plain operating points above then apply): "
            if cue.get("on_by_default")
            else "Switched on (`--forgery-cue`, `Verifier(forgery_cue=True)`, "
            "`$SIGVER_FORGERY_CUE=1`), "
        )
        + "it is subtracted from every normalised score and these operating points apply "
        "instead (rates measured with each calibration writer's cue fitted without that "
        "writer):",
        "",
        "| operating point (forgery cue) | threshold | FRR | FAR skilled | FAR random |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, op in fused.get("operating_points", {}).items():
        mark = " (default)" if name == fused.get("default_operating_point") else ""
        lines.append(
            f"| `{name}`{mark} | {op['threshold']:.4f} | {_pct(op.get('FRR'))} | "
            f"{_pct(op.get('FAR_skilled'))} | {_pct(op.get('FAR_random'))} |"
        )
    return lines


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (dict, list)):
        return "`" + json.dumps(value, sort_keys=True) + "`"
    return str(value)


def _table(mapping: dict[str, Any]) -> list[str]:
    if not mapping:
        return ["(none recorded)"]
    lines = ["| key | value |", "| --- | --- |"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in mapping.items()]
    return lines


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "not recorded"
    minutes, sec = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {sec:02d}s" if hours else f"{minutes}m {sec:02d}s"


def _operating_points_section(cal: dict[str, Any], plot: str | None) -> list[str]:
    """Named operating points and the score normaliser they apply to."""
    points = cal.get("operating_points") or {}
    if not points:
        return []
    pct = _pct
    default = cal.get("default_operating_point")
    lines = [
        "## Operating points",
        "",
        f"Scores are normalised per user with `{cal.get('normalization', 'none')}` "
        "(`sigver.normalization`); each named operating point is a threshold on that score, "
        "with the error rates it gives on the calibration data above. Choose one per store "
        "(`sigver serve --operating-point NAME`, `Verifier(operating_point=NAME)`) or per user "
        "(`sigver users set-operating-point`, `PUT /v1/users/{id}/operating-point`).",
        "",
        "| operating point | threshold | FRR | FAR skilled | FAR random |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, op in points.items():
        mark = " (default)" if name == default else ""
        lines.append(
            f"| `{name}`{mark} | {float(op['threshold']):.4f} | {pct(op.get('FRR'))} | "
            f"{pct(op.get('FAR_skilled'))} | {pct(op.get('FAR_random'))} |"
        )
    lines += _cue_lines(cal.get("forgery_cue"))
    lines.append("")
    if plot:
        lines += [f"![calibration curve]({plot})", ""]
    return lines


def _calibration_section(cal: dict[str, Any]) -> list[str]:
    """The default decision threshold, in words a deployer reads before enrolling users."""

    def pct(key: str) -> str:
        value = cal.get(key)
        return "n/a" if value is None else f"{100 * float(value):.2f} %"

    users = cal.get("users") or []
    span = f"{users[0]}..{users[-1]}" if users else "?"
    return [
        "## Default decision threshold",
        "",
        f"Score threshold **{float(cal['threshold']):.4f}** (target `{cal.get('target')}`), "
        f"calibrated on {cal.get('n_users')} development writers ({span}) with "
        f"{cal.get('refs')} references, {cal.get('folds')} folds, seed {cal.get('seed')}. "
        "Enrollment uses it unless a user has an override. Measured on the same "
        "development data it was chosen on:",
        "",
        *_table(
            {
                "EER (genuine vs skilled)": pct("eer"),
                "FRR": pct("frr"),
                "FAR skilled": pct("far_skilled"),
                "FAR random": pct("far_random"),
                "per-fold thresholds": cal.get("fold_thresholds"),
                "method": cal.get("method"),
            }
        ),
        "",
    ]


def render_model_card(
    weights: ModelWeights, *, notes: str = "", calibration_plot: str | None = None
) -> str:
    """Markdown model card for ``weights``.

    Parameters
    ----------
    weights : ModelWeights
        Loaded checkpoint (metadata + sha256).
    notes : str
        Free text appended under "Notes" (limitations, what was tried).
    calibration_plot : str, optional
        Relative link of the calibration-curve image to show under the operating points.

    Returns
    -------
    str
        The card.
    """
    m = weights.meta
    size = ""
    if weights.path is not None and Path(weights.path).is_file():
        size = f"{Path(weights.path).stat().st_size / 1e6:.1f} MB"
    lines = [
        f"# Model card: {m.name or m.arch} (version {m.version})",
        "",
        "Writer-independent signature feature extractor (SigNet recipe: a CNN trained to",
        "tell writers apart, used frozen as a feature extractor for per-user classifiers).",
        "",
        "## Identity",
        "",
        f"- model id: `{weights.model_id}`",
        f"- file: `{Path(weights.path).name if weights.path else '?'}` {size}".rstrip(),
        f"- sha256: `{weights.sha256}`",
        f"- architecture: `{m.arch}` {_fmt(m.arch_config) if m.arch_config else ''}".rstrip(),
        f"- feature dimension: {m.feature_dim}",
        f"- input: 1x{m.input_size[0]}x{m.input_size[1]} (centre crop), ink high, scaled to [0, 1]",
        f"- storage: {m.storage_dtype} (loaded as float32)",
        f"- created: {m.created or '?'} with sigver {m.code_version}",
        "",
        "## Preprocessing preset",
        "",
        *_table(dict(m.preprocess)),
        "",
        "## Training data",
        "",
        *_table(dict(m.training_data)),
        "",
        "## Recipe",
        "",
        *_table(dict(m.recipe)),
        "",
        f"Training time: {_duration(m.training_time_s)}.",
        "",
        "Command:",
        "",
        "```",
        m.command or "(not recorded)",
        "```",
        "",
        "## Results",
        "",
        *_table({k: v for k, v in m.metrics.items() if k != "calibration"}),
        "",
    ]
    if isinstance(m.metrics.get("calibration"), dict):
        lines += _calibration_section(m.metrics["calibration"])
        lines += _operating_points_section(m.metrics["calibration"], calibration_plot)
    if m.extra:
        lines += ["## Other", "", *_table(dict(m.extra)), ""]
    if notes:
        lines += ["## Notes", "", notes.strip(), ""]
    return "\n".join(lines)


def write_model_card(
    path: str | os.PathLike[str], weights: ModelWeights, *, notes: str = ""
) -> Path:
    """Write :func:`render_model_card` to ``path`` atomically and return the path.

    When the checkpoint's calibration holds a curve, its plot (with the default
    operating point) is written beside the card as ``<card stem>.calibration.png``
    and shown in it.
    """
    path = Path(path)
    cal = weights.meta.metrics.get("calibration")
    plot = None
    if isinstance(cal, dict) and (cal.get("curve") or {}).get("threshold"):
        from sigver.calibration import plot_calibration

        image = path.with_name(f"{path.stem}.calibration.png")
        data = cal.get("data") if isinstance(cal.get("data"), dict) else {}
        where = data.get("dataset") or data.get("name") or "development writers"
        plot_calibration(
            cal,
            image,
            title=f"{weights.model_id}\ncalibration on {where} ({cal.get('n_users', '?')} "
            f"development writers, {cal.get('refs', '?')} refs, {cal.get('folds', '?')} folds), "
            f"operating point {cal.get('default_operating_point', cal.get('target'))!r} at "
            f"T={float(cal.get('threshold', 0.0)):.3f}",
        )
        plot = image.name
    atomic_write(path, render_model_card(weights, notes=notes, calibration_plot=plot))
    return path
