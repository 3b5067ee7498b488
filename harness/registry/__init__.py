"""The registries of tasks and methods (lazy: nothing heavy is imported here).

Built-in components are listed below with their class and params model stated
explicitly; outside ones come from plugins (``harness.registry.plugins``). Params models
live in light modules so that ``harness validate`` and ``harness list`` never import torch.
"""

from harness.registry.core import (
    BUILT_IN,
    PluginError,
    Registry,
    RegistryFrozenError,
    UnknownNameError,
    did_you_mean,
)
from harness.registry.plugins import Component, discover, register_method, register_task

TASKS: Registry = Registry("task", base="harness.tasks.base:Task",
                           config_base="harness.tasks.config:TaskParams")
METHODS: Registry = Registry("method", base="harness.methods.base:Method",
                             config_base="harness.methods.config:MethodParams")

_TASKS = [
    ("logistic", "harness.tasks.logistic.task:LogisticTask",
     "harness.tasks.logistic.config:LogisticParams",
     "Toy logistic regression (paper Sec. 7.1): 3 features, restricted model sees x1"),
    ("grid_rl", "harness.tasks.grid_rl.task:GridRlTask",
     "harness.tasks.grid_rl.config:GridRlParams",
     "Grid RL (paper Sec. 7.3): REINFORCE MDP policy on an 11x11 torus, restricted model = "
     "FIB policy of the POMDP observing x"),
    ("ptb_lstm", "harness.tasks.ptb_lstm.task:PtbLstmTask",
     "harness.tasks.ptb_lstm.config:PtbLstmParams",
     "PTB LSTM language model (paper Sec. 7.2): restricted model = Kneser-Ney bigram"),
    ("glue_bert", "harness.tasks.glue_bert.task:GlueBertTask",
     "harness.tasks.glue_bert.config:GlueBertParams",
     "BERT fine-tuned on GLUE (paper Sec. 7.2, Table 2): MLM re-introduced, regularisers on "
     "the MLM predictions, restricted model = KN bigram over WordPiece"),
]
_METHODS = [
    ("baseline", "Baseline", "BaselineParams",
     "Primary loss only; the restricted model is unused"),
    ("mlm", "Mlm", "MlmParams",
     "Primary loss with the task's auxiliary masked-LM loss, no regulariser (tasks with an "
     "MLM branch, e.g. glue_bert)"),
    ("interpolation", "Interpolation", "InterpolationParams",
     "Baseline training; predictions mixed with the restricted model at test time"),
    ("noising", "Noising", "NoisingParams",
     "Targets resampled from the restricted model with probability lambda/(1+lambda)"),
    ("reverse_kd", "ReverseKd", "ReverseKdParams",
     "Primary loss + lambda * CE(restricted(.|short), Q(.|full))"),
    ("imm_sampled", "ImmSampled", "ImmSampledParams",
     "Primary loss + lambda * CE(restricted, induced Q) over sampled/weighted extended "
     "contexts, crosstalk gradient (paper Eq. 12, App. C.2)"),
    ("imm_serialized", "ImmSerialized", "ImmSerializedParams",
     "Primary loss + lambda * corrected CE with a stale induced model refreshed every r "
     "steps (paper Eq. 13, Alg. 2)"),
]
for _name, _target, _config, _description in _TASKS:
    TASKS.add(_name, _target, config=_config, description=_description)
for _name, _cls, _params, _description in _METHODS:
    METHODS.add(_name, f"harness.methods.{_name}:{_cls}",
                config=f"harness.methods.config:{_params}", description=_description)

__all__ = [
    "BUILT_IN",
    "METHODS",
    "TASKS",
    "Component",
    "PluginError",
    "Registry",
    "RegistryFrozenError",
    "UnknownNameError",
    "did_you_mean",
    "discover",
    "register_method",
    "register_task",
]
