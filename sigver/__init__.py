"""sigver: offline handwritten signature verification.

Writer-independent features are learned by a CNN (SigNet family) and frozen;
per-user (writer-dependent) classifiers are trained on those features.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
