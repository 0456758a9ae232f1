"""hubship: lock, build, test, push and deploy a JupyterHub user image, in one order."""


def __getattr__(name: str) -> str:
    # The version is read from the installed metadata when asked for: importlib.metadata costs every
    # command's start-up more than the rest of `--help` does.
    if name != "__version__":
        raise AttributeError(f"module 'tooling' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    try:
        return version("hubship")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"
