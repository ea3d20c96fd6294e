"""Synthetic handwritten signatures: the embedded default data of sigver.

A trajectory-level generator in the spirit of Ferrer et al. (TPAMI 2015/2017):
writers are personalised single-stroke vector glyphs laid out as a
signature; genuine samples are fluent re-executions of the writer's plan;
skilled forgeries are slow, re-planned, tremulous imitations by a different
motor system. Images are rendered as scans (paper, ink, noise).

Quick use::

    from sigver.synth import generate_corpus, make_writer, render_genuine
    generate_corpus("data/synth", n_writers=10, n_genuine=24, n_forgeries=30, seed=1)
"""

from __future__ import annotations

from sigver.synth.corpus import (
    CorpusInfo,
    SynthError,
    generate_corpus,
    generate_writer,
    make_writer,
    preview_sheet,
    render_forgery,
    render_genuine,
    sample_rngs,
    save_preview,
)
from sigver.synth.model import Forger, PenStroke, SynthWriter

__all__ = [
    "CorpusInfo",
    "Forger",
    "PenStroke",
    "SynthError",
    "SynthWriter",
    "generate_corpus",
    "generate_writer",
    "make_writer",
    "preview_sheet",
    "render_forgery",
    "render_genuine",
    "sample_rngs",
    "save_preview",
]
