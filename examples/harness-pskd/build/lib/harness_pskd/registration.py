"""What the entry point names: the method's class and params model, lazily (importing this
module must stay light: `harness validate` and `harness list` read it)."""

from harness.registry import Component

PSKD = Component(
    target="harness_pskd.method:ProgressiveSelfKD",
    config="harness_pskd.config:PsKdParams",
    description="Progressive self-knowledge distillation (Kim et al. 2021): targets "
    "(1 - a_t) one-hot + a_t Q_previous-epoch(y|x), a_t = alpha_T t/T; no restricted model",
)
