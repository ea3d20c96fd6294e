"""Model cards: a Markdown summary of a checkpoint generated from its metadata."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from sigver.models.checkpoint import ModelWeights, _atomic_write_bytes

__all__ = ["render_model_card", "write_model_card"]


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


def render_model_card(weights: ModelWeights, *, notes: str = "") -> str:
    """Markdown model card for ``weights``.

    Parameters
    ----------
    weights : ModelWeights
        Loaded checkpoint (metadata + sha256).
    notes : str
        Free text appended under "Notes" (limitations, what was tried).

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
        *_table(dict(m.metrics)),
        "",
    ]
    if m.extra:
        lines += ["## Other", "", *_table(dict(m.extra)), ""]
    if notes:
        lines += ["## Notes", "", notes.strip(), ""]
    return "\n".join(lines)


def write_model_card(
    path: str | os.PathLike[str], weights: ModelWeights, *, notes: str = ""
) -> Path:
    """Write :func:`render_model_card` to ``path`` atomically and return the path."""
    path = Path(path)
    text = render_model_card(weights, notes=notes).encode("utf-8")
    _atomic_write_bytes(path, lambda fh: fh.write(text))
    return path
