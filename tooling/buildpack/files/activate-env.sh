# /etc/profile.d/hubship-env.sh, written by the hubship build stage.
#
# The image has no conda to `conda activate` its environment, and
# repo2docker's entrypoint starts every server in a login shell, so this
# does what activation adds beyond PATH (which the image sets): it runs the
# environment's activation scripts (etc/conda/activate.d/*.sh), through
# which packages such as proj or gdal tell their libraries where their data is.
if [ -n "${NB_PYTHON_PREFIX:-}" ] && [ -d "${NB_PYTHON_PREFIX}/etc/conda/activate.d" ]; then
  CONDA_PREFIX="${NB_PYTHON_PREFIX}"
  export CONDA_PREFIX
  for hubship_activate_script in "${NB_PYTHON_PREFIX}"/etc/conda/activate.d/*.sh; do
    if [ -r "$hubship_activate_script" ]; then
      . "$hubship_activate_script"
    fi
  done
  unset hubship_activate_script
fi
