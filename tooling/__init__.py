"""hubship: lock, build, test, push and deploy a JupyterHub user image, in one order."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("hubship")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
