"""The command-line tools that read a finished run: ``vaegan-eval`` and ``vaegan-sample``."""
