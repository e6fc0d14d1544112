"""ragline: a RAG serving stack (ingest → retrieve → generate, composed by api).

Layers, bottom to top (each imports only those below it): ``settings`` and small
utilities; ``ingest``; ``retrieve``; ``generate``; ``service`` (builds components,
collection operations); ``evaluation`` and ``training`` (offline tools); ``api``; ``cli``.
"""

from importlib import metadata

from ragline import offline

offline.apply()  # before any submodule imports a library that reads these variables

try:
    __version__ = metadata.version("ragline")
except metadata.PackageNotFoundError:  # a checkout on sys.path, not installed
    __version__ = "0+unknown"
