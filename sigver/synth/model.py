"""Trajectory-level writer model: writers, genuine samples and skilled forgeries.

The model follows the motor-equivalence view used by Ferrer et al. (TPAMI
2015/2017): a writer has a stable *shape plan* (personalised glyphs, layout,
slant, decorations) that is executed by a motor system with its own inertia
(speed) and stability. A genuine signature is one more fluent execution of
that plan; a skilled forgery is a *different* motor system trying to
reproduce the visible result: it re-plans the shape from the salient points
it can see, draws slowly (little smoothing, tremor), hesitates (pen lifts),
and presses harder and more evenly, with blunt stroke ends.

All coordinates are in cap heights (see :mod:`sigver.synth.glyphs`); the
renderer turns them into pixels.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from sigver.synth import geometry as geo
from sigver.synth.glyphs import CURSIVE_FONTS, PRINT_FONTS, Glyph, load_font
from sigver.synth.lexicon import signature_text

__all__ = [
    "PenStroke",
    "SynthWriter",
    "Forger",
    "ForgerPen",
    "genuine_strokes",
    "forgery_strokes",
]

#: Sampling step of trajectories, in cap heights.
STEP = 0.02
_N_WAVES = 3


@dataclass(frozen=True)
class PenStroke:
    """One pen-down component of a realisation.

    Attributes
    ----------
    points : numpy.ndarray
        ``(n, 2)`` trajectory in cap heights (y down).
    pressure : numpy.ndarray
        ``(n,)`` pen pressure in ``[0, 1]``; drives width and darkness.
    """

    points: np.ndarray
    pressure: np.ndarray


@dataclass
class SynthWriter:
    """A synthetic writer: everything that is shared by all their signatures.

    Create one with :meth:`random`. The per-glyph deformations and the
    resulting template trajectory are fixed at creation, so every genuine
    sample (and every forgery of this writer) starts from the same plan.

    Attributes
    ----------
    text : str
        What the writer signs.
    form : str
        Signature form (see :data:`sigver.synth.lexicon.SIGNATURE_FORMS`).
    font : str
        Hershey font the glyph shapes come from.
    size_px : float
        Cap height in output pixels.
    pen_width : float
        Nominal pen width in output pixels.
    ink : float
        Grey level of full-pressure ink (0 black .. 255 white).
    pressure : float
        Mean pen pressure in ``[0, 1]``.
    speed : float
        Inertia of the writer's motor system: Gaussian smoothing, in samples,
        applied to every execution (higher = rounder, more fluent).
    stability : float
        In ``[0, 1]``; low stability means more intra-writer variability.
    decorations : tuple of str
        Subset of ``("underline", "paraph", "flourish")``.
    template : list of numpy.ndarray
        The shape plan: pen-down components in cap heights.
    version : int
        Generator version (1: the v1 corpus, Latin only; 2: scripts and
        acquisition diversity, see :meth:`random_v2`).
    script, style : str
        Writing system and style (font, hand or character set) of a v2 writer.
    pen : str
        Pen type of a v2 writer (a key of :data:`PEN_TYPES`).
    nib_angle : float
        Angle of a fountain-pen nib, radians.
    pressure_profile : str or None
        Shape of the pressure along each stroke (v2; a key of
        :data:`PRESSURE_PROFILES`); None keeps the v1 behaviour.
    """

    text: str
    form: str
    font: str
    size_px: float
    pen_width: float
    ink: float
    pressure: float
    speed: float
    stability: float
    decorations: tuple[str, ...]
    template: list[np.ndarray] = field(repr=False)
    version: int = 1
    script: str = "latin"
    style: str = ""
    pen: str = "ballpoint"
    nib_angle: float = 0.0
    pressure_profile: str | None = None

    @classmethod
    def random(cls, rng: np.random.Generator) -> SynthWriter:
        """Draw a new writer.

        Parameters
        ----------
        rng : numpy.random.Generator
            Source of randomness; the writer is a pure function of its state.

        Returns
        -------
        SynthWriter
        """
        form, text = signature_text(rng)
        cursive = rng.random() < 0.85
        font = str(rng.choice(CURSIVE_FONTS if cursive else PRINT_FONTS))
        decorations = []
        short = form == "initials" or len(text) <= 5
        if rng.random() < (0.45 if short else 0.25):
            decorations.append("underline")
        if rng.random() < (0.35 if short else 0.15):
            decorations.append("paraph")
        if rng.random() < 0.3:
            decorations.append("flourish")
        size_px = float(np.exp(rng.uniform(np.log(45.0), np.log(95.0))))
        speed = float(rng.uniform(1.5, 6.0))
        template = _plan(rng, text, font, cursive, tuple(decorations), speed)
        return cls(
            text=text,
            form=form,
            font=font,
            size_px=size_px,
            speed=speed,
            decorations=tuple(decorations),
            template=template,
            **_draw_hand(rng),
        )

    @classmethod
    def random_v2(cls, rng: np.random.Generator, script: str, split: str = "all") -> SynthWriter:
        """Draw a v2 writer of ``script`` (a key of :data:`sigver.synth.scripts.SCRIPTS`).

        Parameters
        ----------
        rng : numpy.random.Generator
            Source of randomness.
        script : str
            Writing system.
        split : {"all", "train", "holdout"}
            Which of the script's styles may be drawn (see
            :func:`sigver.synth.scripts.styles_for`).

        Returns
        -------
        SynthWriter
        """
        from sigver.synth.scripts import SCRIPTS, script_font, script_text, styles_for

        spec = SCRIPTS[script]
        styles = styles_for(script, split)
        style = str(styles[int(rng.integers(len(styles)))])
        font = script_font(script, style)
        form, text = script_text(rng, script, style)
        cursive = rng.random() < spec.cursive_prob
        short = script == "initials" or len(text) <= 5
        decorations = []
        if rng.random() < (0.45 if short else 0.25):
            decorations.append("underline")
        if script == "initials" or rng.random() < (0.35 if short else 0.15):
            decorations.append("paraph")
        if rng.random() < (0.6 if script == "initials" else 0.3):
            decorations.append("flourish")
        size_px = float(np.exp(rng.uniform(np.log(45.0), np.log(95.0))))
        # Dense CJK characters survive only a little inertia smoothing.
        speed = float(rng.uniform(0.8, 2.5) if script == "cjk" else rng.uniform(1.5, 6.0))
        if script == "cjk":
            size_px *= 1.3
        if form == "flourish":
            template = _flourish_plan(rng, speed)
        else:
            template = _plan(
                rng,
                text,
                font,
                cursive,
                tuple(decorations),
                speed,
                headline=spec.headline,
                rtl=spec.rtl,
            )
        pens = list(PEN_TYPES)
        pen = str(pens[int(rng.choice(len(pens), p=list(PEN_TYPES.values())))])
        profiles = list(PRESSURE_PROFILES)
        hand = _draw_hand(rng)  # drawn here, after the pen, to keep corpora bit-identical
        return cls(
            text=text,
            form=form,
            font=style,
            size_px=size_px,
            speed=speed,
            decorations=tuple(decorations),
            template=template,
            **hand,
            version=2,
            script=script,
            style=style,
            pen=pen,
            nib_angle=float(rng.uniform(0.0, np.pi)),
            pressure_profile=str(profiles[int(rng.integers(len(profiles)))]),
        )


#: v2 pen types and their probabilities (see :func:`sigver.synth.render.render_strokes_v2`).
PEN_TYPES: dict[str, float] = {
    "ballpoint": 0.45,
    "gel": 0.2,
    "felt": 0.15,
    "fountain": 0.1,
    "pencil": 0.1,
}
#: v2 pressure profiles along a stroke (multipliers of the writer's pressure).
PRESSURE_PROFILES: tuple[str, ...] = ("even", "attack", "fade", "wavy")


def pressure_profile(name: str, n: int) -> np.ndarray:
    """Pressure multiplier along a stroke of ``n`` samples (deterministic)."""
    t = np.linspace(0.0, 1.0, n)
    if name == "attack":  # presses at the start, lifts off gradually
        return 1.15 - 0.35 * t
    if name == "fade":
        return 0.8 + 0.35 * t
    if name == "wavy":
        return 1.0 + 0.18 * np.sin(2 * np.pi * t * max(1.0, n / 80.0))
    return np.ones(n)


#: Beta distribution of forger skill (mean ~0.44: most people who were asked
#: to forge a signature are not practised forgers).
SKILL_BETA = (2.2, 2.8)


@dataclass(frozen=True)
class ForgerPen:
    """The forger's own pen, ink and pressure (generator v3).

    Drawn from the same distributions as any writer's, independently of the
    target's: a forger writes with whatever pen they hold, so their strokes are
    as often thinner, lighter or smoother than the target's as the reverse.
    """

    pen: str
    width: float
    ink: float
    pressure: float
    nib_angle: float


@dataclass(frozen=True)
class Forger:
    """A forger's own motor habits, shared by the forgeries they produce.

    A forger copies a specimen slowly, so they rarely hit the writer's
    proportions: each forger has a systematic bias in size, aspect and slant
    (the same in all their imitations of a writer) on top of per-forgery
    misjudgements. Their pen rarely matches the writer's either.

    Attributes
    ----------
    skill : float
        In ``[0, 1]``; scales every forgery artefact down as it grows.
    tremor : float
        Tremor amplitude in cap heights.
    pen_factor : float
        Forger's pen width relative to the target's.
    ink_factor : float
        Forger's ink level relative to the target's.
    size_bias : float
        Systematic relative size error (1 = exact size).
    aspect_bias : float
        Systematic width/height proportion error (1 = exact).
    slant_bias : float
        Systematic slant error (shear, positive leans right).
    own_pen : ForgerPen or None
        Generator v3: the pen the forger writes with, replacing the
        target-relative ``pen_factor`` / ``ink_factor`` and the harder press.
    """

    skill: float
    tremor: float
    pen_factor: float
    ink_factor: float
    size_bias: float = 1.0
    aspect_bias: float = 1.0
    slant_bias: float = 0.0
    own_pen: ForgerPen | None = None

    @classmethod
    def random(cls, rng: np.random.Generator, *, own_pen: bool = False) -> Forger:
        """Draw a forger.

        Parameters
        ----------
        rng : numpy.random.Generator
            The forger's random stream.
        own_pen : bool
            Also draw the forger's own pen, ink and pressure from the same
            distributions as any writer's (generator v3). Drawn after
            everything else, so the other attributes do not change.
        """
        skill = float(rng.beta(SKILL_BETA[0], SKILL_BETA[1]))
        unskill = 1.0 - skill
        forger = cls(
            skill=skill,
            tremor=float((0.004 + 0.012 * unskill) * rng.uniform(0.7, 1.3)),
            # Forgers use their own pen, on average a blunter one (they press
            # harder too), and rarely the same ink.
            pen_factor=float(np.exp(rng.normal(0.25, 0.2))),
            ink_factor=float(rng.uniform(0.7, 1.1)),
            size_bias=float(np.exp(rng.normal(0.0, 0.06 + 0.08 * unskill))),
            aspect_bias=float(np.exp(rng.normal(0.0, 0.05 + 0.08 * unskill))),
            slant_bias=float(rng.normal(0.0, 0.05 + 0.1 * unskill)),
        )
        if own_pen:
            pens = list(PEN_TYPES)
            pen = str(pens[int(rng.choice(len(pens), p=list(PEN_TYPES.values())))])
            hand = _draw_hand(rng)
            forger = replace(
                forger,
                own_pen=ForgerPen(
                    pen=pen,
                    width=hand["pen_width"],
                    ink=hand["ink"],
                    pressure=hand["pressure"],
                    nib_angle=float(rng.uniform(0.0, np.pi)),
                ),
            )
        return forger


# --------------------------------------------------------------------------- planning


def _glyph_deformation(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per-writer, per-glyph smooth deformation: a linear part and sine waves."""
    sx = np.exp(rng.normal(0.0, 0.14))
    sy = np.exp(rng.normal(0.0, 0.12))
    shear = rng.normal(0.0, 0.12)
    lin = np.array([[sx, shear], [0.0, sy]])
    # waves[k] = (amp_x, amp_y, fx, fy, phase): displacement amp * sin(2pi f.p + phase)
    waves = np.column_stack(
        [
            rng.normal(0.0, 0.07, (_N_WAVES, 2)),
            rng.normal(0.0, 1.3, (_N_WAVES, 2)),
            rng.uniform(0.0, 2 * np.pi, _N_WAVES),
        ]
    )
    return lin, waves


def _deform(pts: np.ndarray, lin: np.ndarray, waves: np.ndarray) -> np.ndarray:
    out = pts @ lin.T
    for ax, ay, fx, fy, ph in waves:
        s = np.sin(2 * np.pi * (fx * pts[:, 0] + fy * pts[:, 1]) + ph)
        out[:, 0] += ax * s
        out[:, 1] += ay * s
    return out


def _merge_touching(strokes: list[np.ndarray], tol: float) -> list[np.ndarray]:
    """Join strokes whose end meets the next one's start (pen never lifted)."""
    merged: list[np.ndarray] = []
    for s in strokes:
        if merged and np.hypot(*(merged[-1][-1] - s[0])) < tol:
            merged[-1] = np.vstack([merged[-1], s[1:]])
        else:
            merged.append(s)
    return merged


def _bezier(p0: np.ndarray, p1: np.ndarray, p2: np.ndarray, step: float) -> np.ndarray:
    n = max(3, int(np.hypot(*(p2 - p0)) / step) + 2)
    t = np.linspace(0.0, 1.0, n)[:, None]
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2


def _draw_hand(rng: np.random.Generator) -> dict[str, float]:
    """A writer's pen width, ink darkness, pressure and stability (v1 and v2 alike).

    The draw order is part of the corpora's determinism: do not reorder.
    """
    return {
        "pen_width": float(rng.uniform(2.2, 4.8)),
        "ink": float(rng.uniform(25.0, 115.0)),
        "pressure": float(rng.uniform(0.45, 0.8)),
        "stability": float(rng.beta(4.0, 2.0)),
    }


def _plan(
    rng: np.random.Generator,
    text: str,
    font_name: str | Mapping[str, Glyph],
    cursive: bool,
    decorations: tuple[str, ...],
    speed: float,
    *,
    headline: bool = False,
    rtl: bool = False,
) -> list[np.ndarray]:
    """Build the writer's template trajectory (the shape plan).

    ``font_name`` is a Hershey font name or a glyph mapping (v2 scripts);
    ``headline`` draws a head line across every word after it is written,
    ``rtl`` mirrors the line so that it is written right to left. With the
    defaults, the random stream is consumed exactly as in v1.
    """
    font = load_font(font_name) if isinstance(font_name, str) else font_name
    deformations: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    # Draw one deformation per distinct character in a fixed order, so that
    # the same letter always looks the same within a writer.
    for ch in sorted(set(text)):
        deformations[ch] = _glyph_deformation(rng)
    spacing = rng.uniform(-0.12, 0.12)
    space = rng.uniform(0.25, 0.7)
    join_tol = rng.uniform(0.35, 0.7) if cursive else 0.0
    # Many people write only the first letters of a word legibly, then a
    # shrinking, flattening scribble.
    scribble = rng.random() < 0.4
    legible = int(rng.integers(1, 4))
    squash_x, squash_y = rng.uniform(0.45, 0.85), rng.uniform(0.45, 0.85)

    components: list[np.ndarray] = []
    late: list[np.ndarray] = []  # marks and head lines, written after the word
    x = 0.0
    prev_joinable = False
    pos_in_word = 0
    word_start = 0.0

    def close_word(x_end: float) -> None:
        if headline and x_end - word_start > 0.1:
            a = (word_start - rng.uniform(0.0, 0.1), -1.0 + rng.normal(0.0, 0.03))
            b = (x_end + rng.uniform(-0.05, 0.1), -1.0 + rng.normal(0.0, 0.03))
            late.append(geo.resample(np.array([a, b]), STEP))

    for ch in text:
        if ch == " ":
            close_word(x - spacing)
            x += space
            word_start = x
            prev_joinable = False
            pos_in_word = 0
            continue
        glyph: Glyph | None = font.get(ch)
        if glyph is None or not glyph.strokes:
            continue
        lin, waves = deformations[ch]
        hx = hy = 1.0
        if scribble and pos_in_word >= legible and ch.islower():
            decay = 0.85 ** (pos_in_word - legible)
            hx, hy = squash_x * decay + (1 - decay) * 0.4, squash_y
        strokes = [geo.resample(s, STEP) for s in glyph.strokes]
        strokes = _merge_touching(strokes, 0.06)
        placed = []
        for s in strokes:
            d = _deform(s, lin, waves)
            d[:, 0] *= hx
            d[:, 1] *= hy
            placed.append(d + (x, 0.0))
        if prev_joinable and components:
            gap = np.hypot(*(components[-1][-1] - placed[0][0]))
            if gap < join_tol:
                bridge = geo.resample(np.vstack([components[-1][-1], placed[0][0]]), STEP)
                components[-1] = np.vstack([components[-1], bridge[1:-1], placed[0]])
                placed = placed[1:]
        components.extend(placed)
        for m in glyph.marks:
            d = _deform(m, lin, waves)
            late.append(d * (hx, hy) + (x, 0.0))
        x += glyph.advance * lin[0, 0] * hx + spacing
        prev_joinable = cursive and ch.isalpha()
        pos_in_word += 1
    close_word(x - spacing)
    if components and late:
        components.extend(late)
    if rtl:
        # Mirroring keeps the time order of every stroke, so the line and each
        # letter are now written leftwards.
        components = [c * (-1.0, 1.0) for c in components]

    if not components:  # a name made only of unsupported characters: draw a line
        components = [geo.resample(np.array([[0.0, 0.0], [3.0, 0.0]]), STEP)]
    allpts = np.vstack(components)
    x0, x1 = float(allpts[:, 0].min()), float(allpts[:, 0].max())
    width = max(x1 - x0, 0.5)

    if "flourish" in decorations:
        last = components[-1]
        end = last[-1]
        ctrl = end + (rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8))
        tip = end + (rng.uniform(0.6, 1.8), rng.uniform(-1.2, 0.3))
        tail = _bezier(end, ctrl, tip, STEP)
        components[-1] = np.vstack([last, tail[1:]])
    if "underline" in decorations:
        y = rng.uniform(0.2, 0.6)
        a = np.array([x0 + width * rng.uniform(-0.25, 0.2), y + rng.uniform(-0.15, 0.15)])
        b = np.array([x0 + width * rng.uniform(0.75, 1.15), y + rng.uniform(-0.2, 0.2)])
        mid = (a + b) / 2 + (0.0, rng.uniform(-0.35, 0.35))
        line = _bezier(a, mid, b, STEP)
        if rng.random() < 0.5:  # hook back at the end
            hook = _bezier(b, b + (0.3, -0.15), b + (rng.uniform(-0.4, 0.1), -0.3), STEP)
            line = np.vstack([line, hook[1:]])
        components.append(line)
    if "paraph" in decorations:
        # A paraph: big sweeps back and forth under the name, through a few
        # random nodes (a Catmull-Rom spline keeps it one fluent stroke).
        n_sweeps = int(rng.integers(2, 5))
        nodes = [(x1 + rng.uniform(-0.1, 0.3), rng.uniform(-0.1, 0.3))]
        for k in range(n_sweeps):
            y = 0.35 + 0.2 * k + rng.uniform(-0.1, 0.2)
            if k % 2 == 0:
                nodes.append((x0 + width * rng.uniform(-0.1, 0.35), y))
            else:
                nodes.append((x0 + width * rng.uniform(0.75, 1.15), y))
        components.append(geo.catmull_rom(np.array(nodes), STEP))

    # Writer-level layout: aspect, slant, baseline waviness and skew.
    aspect = np.exp(rng.normal(0.0, 0.2))
    slant = rng.normal(0.25, 0.25)  # >0 leans right
    wave_amp = abs(rng.normal(0.0, 0.08))
    wave_len = rng.uniform(2.0, 6.0)
    wave_ph = rng.uniform(0, 2 * np.pi)
    skew = np.deg2rad(rng.normal(5.0, 8.0))
    rot = np.array([[np.cos(skew), np.sin(skew)], [-np.sin(skew), np.cos(skew)]])
    out = []
    for c in components:
        c = c.copy()
        c[:, 0] = c[:, 0] * aspect - slant * c[:, 1]
        c[:, 1] = c[:, 1] + wave_amp * np.sin(2 * np.pi * c[:, 0] / wave_len + wave_ph)
        c = c @ rot.T
        # The writer's inertia rounds corners of the plan itself.
        out.append(geo.gaussian_smooth(geo.resample(c, STEP), speed))
    return out


def _flourish_plan(rng: np.random.Generator, speed: float) -> list[np.ndarray]:
    """A signature made only of a flourish: one or two looping strokes."""
    out = []
    for k in range(1 + int(rng.random() < 0.4)):
        n = int(rng.integers(5, 10))
        t = np.linspace(0.0, 1.0, n)
        x = 3.5 * t + rng.normal(0.0, 0.35, n)
        y = -0.5 + 0.6 * np.sin(2 * np.pi * t * rng.uniform(0.8, 2.2) + rng.uniform(0, 6.3))
        y = y + rng.normal(0.0, 0.25, n) + 0.6 * k
        # Loops: every other node steps back, as in a looped paraph.
        x[1::2] -= rng.uniform(0.2, 0.7)
        path = geo.catmull_rom(np.column_stack([x, y]), STEP)
        out.append(geo.gaussian_smooth(geo.resample(path, STEP), speed))
    return out


# --------------------------------------------------------------------------- execution


def _taper(n: int, rng: np.random.Generator, blunt: bool) -> np.ndarray:
    if blunt or n < 6:
        return np.ones(n)
    ramp_in = max(2, int(n * rng.uniform(0.04, 0.12)))
    ramp_out = max(2, int(n * rng.uniform(0.06, 0.2)))
    ramp_in, ramp_out = min(ramp_in, n // 3), min(ramp_out, n // 3)
    w = np.ones(n)
    w[:ramp_in] = np.sin(np.linspace(0.35, np.pi / 2, ramp_in))
    w[n - ramp_out :] = np.sin(np.linspace(np.pi / 2, 0.15, ramp_out))
    return w


def _global_jitter(
    comps: list[np.ndarray], rng: np.random.Generator, rot_deg: float, scale: float, shear: float
) -> list[np.ndarray]:
    center = np.vstack(comps).mean(axis=0)
    a = np.deg2rad(rng.normal(0.0, rot_deg))
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    sx, sy = np.exp(rng.normal(0.0, scale, 2))
    sh = rng.normal(0.0, shear)
    m = rot @ np.array([[sx, sh], [0.0, sy]])
    return [geo.affine(c, m, center) for c in comps]


def _elastic(comps: list[np.ndarray], rng: np.random.Generator, amp: float) -> list[np.ndarray]:
    """Smooth sinusoidal displacement field over the whole signature."""
    waves = np.column_stack(
        [
            rng.normal(0.0, amp, (3, 2)),
            rng.normal(0.0, 0.35, (3, 2)),
            rng.uniform(0, 2 * np.pi, 3),
        ]
    )
    return [_deform(c, np.eye(2), waves) for c in comps]


def genuine_strokes(writer: SynthWriter, rng: np.random.Generator) -> list[PenStroke]:
    """One genuine execution of the writer's plan.

    Parameters
    ----------
    writer : SynthWriter
        The writer.
    rng : numpy.random.Generator
        Randomness for this sample only.

    Returns
    -------
    list of PenStroke
    """
    v = 0.5 + 1.5 * (1.0 - writer.stability)  # intra-writer variability scale
    comps = _global_jitter(writer.template, rng, 2.0 * v, 0.035 * v, 0.04 * v)
    comps = _elastic(comps, rng, 0.035 * v)
    base_p = float(np.clip(writer.pressure + rng.normal(0.0, 0.05), 0.2, 1.0))
    out = []
    for c in comps:
        c = c + rng.normal(0.0, 0.025 * v, 2)  # components move relative to each other
        n = len(c)
        drift = geo.smooth_noise(rng, n, 12.0, 2) * (0.01 * v)
        c = geo.gaussian_smooth(c + drift, rng.uniform(0.5, 1.5))
        p = base_p + 0.12 * geo.smooth_noise(rng, n, 20.0)
        if writer.pressure_profile is not None:
            p = p * pressure_profile(writer.pressure_profile, n)
        p = np.clip(p, 0.05, 1.0) * _taper(n, rng, blunt=False)
        out.append(PenStroke(c, p))
    return out


def forgery_strokes(
    writer: SynthWriter, rng: np.random.Generator, forger: Forger | None = None
) -> list[PenStroke]:
    """One skilled forgery of ``writer`` by ``forger``.

    Parameters
    ----------
    writer : SynthWriter
        The target writer.
    rng : numpy.random.Generator
        Randomness for this forgery only.
    forger : Forger, optional
        The forger; a random one is drawn from ``rng`` when omitted.

    Returns
    -------
    list of PenStroke
    """
    if forger is None:
        forger = Forger.random(rng)
    unskill = 1.0 - forger.skill
    # The forger studies a genuine specimen: global misjudgements of size,
    # proportions, slant and rotation, systematic per forger and larger than
    # the writer's own jitter.
    center = np.vstack(writer.template).mean(axis=0)
    habit = np.array(
        [
            [forger.size_bias * forger.aspect_bias, -forger.slant_bias],
            [0.0, forger.size_bias / forger.aspect_bias],
        ]
    )
    comps = [geo.affine(c, habit, center) for c in writer.template]
    comps = _global_jitter(
        comps, rng, 2.0 + 2.5 * unskill, 0.035 + 0.04 * unskill, 0.03 + 0.04 * unskill
    )
    comps = _elastic(comps, rng, 0.02 + 0.025 * unskill)
    node_sigma = 0.02 + 0.04 * unskill
    part_sigma = 0.04 + 0.07 * unskill
    max_gap = int(rng.uniform(10, 18))
    replanned = []
    for c in comps:
        # Each component (a letter group, the paraph) is copied on its own:
        # its size and place relative to the others are misjudged.
        mid = c.mean(axis=0)
        sx, sy = np.exp(rng.normal(0.0, part_sigma, 2))
        c = geo.affine(c, np.array([[sx, 0.0], [0.0, sy]]), mid)
        c = c + rng.normal(0.0, 0.045 + 0.05 * unskill, 2)
        keys = geo.curvature_keypoints(c, max_gap=max_gap)
        # Misjudgements of key point positions are correlated along the
        # stroke (a whole loop drawn too wide, over ~0.3 cap heights) rather
        # than per node, which would only scribble; plus a little jitter.
        err = geo.smooth_noise(rng, len(c), 15.0, 2)[keys] * node_sigma
        nodes = c[keys] + err + rng.normal(0.0, 0.006 + 0.012 * unskill, (len(keys), 2))
        replanned.append(geo.resample(geo.catmull_rom(nodes, STEP / 2), STEP))

    # Hesitations: pen lifts, placed on the longest components, with a small
    # gap or overlap where the forger resumes; clumsier forgers stop more.
    n_lifts = int(rng.integers(1, 4 + int(round(3 * unskill))))
    for _ in range(n_lifts):
        lengths = np.array([len(c) for c in replanned])
        i = int(np.argmax(lengths))
        c = replanned[i]
        if len(c) < 30:
            break
        cut = int(rng.integers(len(c) // 5, 4 * len(c) // 5))
        back = int(rng.integers(-4, 7))  # >0: overlap (retrace), <0: gap
        second = c[max(cut - back, 1) :] + rng.normal(0.0, 0.015, 2)
        replanned[i : i + 1] = [c[:cut], second]

    if forger.own_pen is None:
        # v1/v2: forgers press harder than the target, whatever the target's pressure.
        base_p = float(np.clip(0.35 + 0.85 * writer.pressure + rng.normal(0.0, 0.04), 0.3, 1.0))
    else:
        base_p = float(np.clip(forger.own_pen.pressure + rng.normal(0.0, 0.04), 0.3, 1.0))
    out = []
    for c in replanned:
        n = len(c)
        # Slow drawing: almost no inertia smoothing, plus physiological tremor.
        c = geo.gaussian_smooth(c, rng.uniform(0.6, 1.6))
        c = c + geo.smooth_noise(rng, n, rng.uniform(1.2, 2.5), 2) * forger.tremor
        p = np.clip(base_p + 0.05 * geo.smooth_noise(rng, n, 25.0), 0.2, 1.0)
        out.append(PenStroke(c, p))  # no taper: blunt starts and ends
    return out
