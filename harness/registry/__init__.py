"""The registries of built-in tasks and methods (lazy: nothing heavy is imported here)."""

from harness.registry.core import Registry, RegistryFrozenError, UnknownNameError, did_you_mean

TASKS: Registry = Registry("task")
METHODS: Registry = Registry("method")

# Built-in tasks. Config models live in light modules so that `harness validate` and
# `harness list` never import torch.
TASKS.add(
    "logistic",
    "harness.tasks.logistic.task:LogisticTask",
    description="Toy logistic regression (paper Sec. 7.1): 3 features, restricted model sees x1",
    config="harness.tasks.logistic.config:LogisticParams",
)

TASKS.add(
    "grid_rl",
    "harness.tasks.grid_rl.task:GridRlTask",
    description="Grid RL (paper Sec. 7.3): REINFORCE MDP policy on an 11x11 torus, restricted "
    "model = FIB policy of the POMDP observing x",
    config="harness.tasks.grid_rl.config:GridRlParams",
)

TASKS.add(
    "ptb_lstm",
    "harness.tasks.ptb_lstm.task:PtbLstmTask",
    description="PTB LSTM language model (paper Sec. 7.2): restricted model = Kneser-Ney bigram",
    config="harness.tasks.ptb_lstm.config:PtbLstmParams",
)

TASKS.add(
    "glue_bert",
    "harness.tasks.glue_bert.task:GlueBertTask",
    description="BERT fine-tuned on GLUE (paper Sec. 7.2, Table 2): MLM re-introduced, "
    "regularisers on the MLM predictions, restricted model = KN bigram over WordPiece",
    config="harness.tasks.glue_bert.config:GlueBertParams",
)

_METHODS = {
    "baseline": "Primary loss only; the restricted model is unused",
    "mlm": "Primary loss with the task's auxiliary masked-LM loss, no regulariser "
    "(tasks with an MLM branch, e.g. glue_bert)",
    "interpolation": "Baseline training; predictions mixed with the restricted model at test time",
    "noising": "Targets resampled from the restricted model with probability lambda/(1+lambda)",
    "reverse_kd": "Primary loss + lambda * CE(restricted(.|short), Q(.|full))",
    "imm_sampled": "Primary loss + lambda * CE(restricted, induced Q) over sampled/weighted "
    "extended contexts, crosstalk gradient (paper Eq. 12, App. C.2)",
    "imm_serialized": "Primary loss + lambda * corrected CE with a stale induced model refreshed "
    "every r steps (paper Eq. 13, Alg. 2)",
}
for _name, _description in _METHODS.items():
    METHODS.add(
        _name,
        f"harness.methods.{_name}:{''.join(p.title() for p in _name.split('_'))}",
        description=_description,
        config=f"harness.methods.config:{''.join(p.title() for p in _name.split('_'))}Params",
    )

__all__ = [
    "METHODS",
    "TASKS",
    "Registry",
    "RegistryFrozenError",
    "UnknownNameError",
    "did_you_mean",
]
