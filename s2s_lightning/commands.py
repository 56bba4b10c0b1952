"""Registration of the sub-commands that live outside cli.py (each adds its own parser)."""

PARSERS: list = []
