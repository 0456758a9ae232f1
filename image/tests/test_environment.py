"""Checks of the user image, run inside it as jovyan by `python -m tooling test`."""

import os
import sys


def test_python_is_the_locked_environment():
    assert sys.prefix == os.environ["NB_PYTHON_PREFIX"]


def test_scientific_stack_computes():
    import numpy as np
    import pandas as pd
    import xarray as xr

    data = xr.DataArray(np.arange(6.0).reshape(2, 3), dims=("y", "x"))
    assert float(data.mean()) == 2.5
    assert pd.Series([1, 2, 3]).sum() == 6


def test_home_is_writable():
    path = os.path.join(os.path.expanduser("~"), ".image-test-write")
    with open(path, "w") as handle:
        handle.write("ok")
    os.remove(path)
