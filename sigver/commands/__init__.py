"""Sub-commands of the ``sigver`` CLI (see :mod:`sigver.cli`)."""
