"""Application tools beside ``video/`` and ``bench/``: ``paragon eval``, ``compare`` and ``release``.

They use the runtime (to run models as the plugin does) and the training package's
degradations and metrics; they need the ``train`` extra.
"""
