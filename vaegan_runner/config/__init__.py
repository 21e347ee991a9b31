"""What the config needs that the rest of the package builds on: the errors and checks, the
override and resume rules read before Hydra runs, and the run and sweep folders Hydra makes. A
leaf: it imports nothing of the package (``tests/test_layout.py``), so every package may import it."""
