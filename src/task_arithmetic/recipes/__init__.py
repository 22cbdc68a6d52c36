"""Fine-tuning recipes as plug-ins, and their one registry.

A recipe is a training mode (how theta trains) plus a regulariser (a term of the objective); see
base.py for the interface. Adding one is one plug-in file in this folder and one entry below;
training (src/finetune.py), the run names, evaluation, the model pools, the study and the report
all read these tables.
"""

from __future__ import annotations

from .attn_only import AttnOnly
from .base import Mode, Plugin, Regularizer
from .basic import Linear, NoRegularizer, Standard
from .l2_sp import L2SP
from .talos import Talos
from .tau_jp import TauJp

MODES: dict[str, Mode] = {m.name: m for m in (Standard(), Linear(), AttnOnly(), Talos())}
REGULARIZERS: dict[str, Regularizer] = {r.name: r for r in (NoRegularizer(), TauJp(), L2SP())}

__all__ = ["MODES", "REGULARIZERS", "Mode", "Plugin", "Regularizer"]
