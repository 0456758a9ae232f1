"""A `kubectl` CLI for tests, for exactly the calls the toolkit makes; never used by the product.

- `kubectl config current-context`: the KUBECONFIG's current context.
- `kubectl --context C --namespace NS rollout status KIND/NAME --timeout=DURATION`:
  the object must be one the deployed Helm releases of NS created (the helm
  stand-in's cluster folder, tests/helm_standin/cluster.py); it has rolled
  out at once, unless KUBECTL_STANDIN_STUCK names it (KIND/NAME, comma
  separated): then it waits out its timeout and fails as kubectl does.
Run it as `tests/kubectl_standin/kubectl` (HELM_STANDIN_PYTHON: the Python to use).
"""

from pathlib import Path

KUBECTL = Path(__file__).resolve().parent / "kubectl"
