"""A stand-in for micromamba (which cannot be installed here), used only by the tests of `--engine conda-lock`."""
