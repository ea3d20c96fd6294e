"""Random personal names for synthetic writers.

Names are built from syllables so that the lexicon is unbounded and no real
person's name list has to be shipped. The *form* of a signature (full name,
initial + surname, surname only, initials) follows the usual split seen in
Western signature corpora, where most people write some abbreviation of
their name rather than the full name.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SIGNATURE_FORMS", "random_name", "signature_text"]

_ONSETS = (
    "b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w",
    "br", "ch", "cl", "dr", "fr", "gr", "pl", "st", "tr", "sh", "th", "",
)  # fmt: skip
_VOWELS = ("a", "e", "i", "o", "u", "a", "e", "o", "ie", "ou", "ea", "y")
_CODAS = ("", "", "", "n", "r", "l", "s", "m", "t", "nd", "rt", "ck", "ll", "ns", "x")

#: Signature forms and their probabilities.
SIGNATURE_FORMS: dict[str, float] = {
    "full": 0.25,
    "initial_surname": 0.35,
    "surname": 0.25,
    "initials": 0.15,
}


def _word(rng: np.random.Generator, n_min: int, n_max: int) -> str:
    n = int(rng.integers(n_min, n_max + 1))
    parts = []
    for i in range(n):
        parts.append(str(rng.choice(_ONSETS)) + str(rng.choice(_VOWELS)))
        # A closing consonant mostly on the last syllable keeps words pronounceable.
        if i == n - 1 or rng.random() < 0.25:
            parts.append(str(rng.choice(_CODAS)))
    return "".join(parts)


def random_name(rng: np.random.Generator) -> tuple[str, str]:
    """Draw a random (first name, surname) pair, both capitalised.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.

    Returns
    -------
    tuple of str
        ``(first, last)``.
    """
    first = _word(rng, 1, 3)
    last = _word(rng, 2, 3)
    return first.capitalize(), last.capitalize()


def signature_text(rng: np.random.Generator) -> tuple[str, str]:
    """Draw a name and the text a writer would put in a signature.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.

    Returns
    -------
    tuple of str
        ``(form, text)`` where ``form`` is a key of :data:`SIGNATURE_FORMS`.
    """
    first, last = random_name(rng)
    forms = list(SIGNATURE_FORMS)
    form = str(rng.choice(forms, p=list(SIGNATURE_FORMS.values())))
    if form == "full":
        text = f"{first} {last}"
    elif form == "initial_surname":
        text = f"{first[0]}. {last}" if rng.random() < 0.5 else f"{first[0]} {last}"
    elif form == "surname":
        text = last
    else:
        text = f"{first[0]}{last[0]}" if rng.random() < 0.5 else f"{first[0]}.{last[0]}."
    return form, text
