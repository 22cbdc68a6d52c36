"""FusionBench-style model merging: algorithms, model pools, task pools and a config-driven program.

    from task_arithmetic.merging import TaskArithmeticAlgorithm
    merged = TaskArithmeticAlgorithm(scaling_factor=0.5).run({"_pretrained_": m0, "svhn": m1, "mnist": m2})

Unlike FusionBench, the inputs are never modified unless inplace=True (then the merge is written
where FusionBench writes it: theta_0's module, or the first model for the averaging methods).
"""

from ._lazy import lazy_exports

_EXPORTS = {
    "MergeAlgorithm": "base",
    "TaskVectorStream": "base",
    "DummyAlgorithm": "dummy",
    "SimpleAverageAlgorithm": "simple_average",
    "TaskArithmeticAlgorithm": "task_arithmetic",
    "WeightedTaskArithmeticAlgorithm": "weighted_task_arithmetic",
    "WeightedAverageAlgorithm": "weighted_average",
    "TaskSingularVectorMerging": "task_singular_vector",
    "ISO_C_Merge": "isotropic",
    "ISO_CTS_Merge": "isotropic",
    "IsotropicMergingInCommonSubspace": "isotropic",
    "IsotropicMergingInCommonAndTaskSubspace": "isotropic",
    "MagMaxAlgorithm": "magmax",
    "magmax_merge": "magmax",
    "WUDIMerging": "wudi",
    "wudi_merging": "wudi",
    "TallMaskTaskArithmeticAlgorithm": "tall_mask",
    "ConsensusTaskArithmeticAlgorithm": "tall_mask",
    "RegMeanAlgorithm": "regmean",
    "RegMeanAlgorithmForCLIP": "regmean",
    "RegMeanAlgorithmPlusPlus": "regmean_plusplus",
    "RegMeanAlgorithmForCLIPPlusPlus": "regmean_plusplus",
    "FisherMergingAlgorithm": "fisher_merging",
    "FisherMergingForCLIPVisionModel": "fisher_merging",
    "LiNeSAlgorithm": "lines",
    "CARTMerging": "cart",
    "TiesMergingAlgorithm": "ties_merging",
    "AdaMergingAlgorithm": "adamerging",
    "TaskWiseAdaMergingAlgorithm": "adamerging",
    "LayerWiseAdaMergingAlgorithm": "adamerging",
    "CLIPTaskWiseAdaMergingAlgorithm": "adamerging",
    "CLIPLayerWiseAdaMergingAlgorithm": "adamerging",
    "DareAlgorithm": "dare",
    "DareTaskArithmetic": "dare",
    "DareSimpleAverage": "dare",
    "DareTiesMerging": "dare",
    "PRETRAINED": "modelpool",
    "BaseModelPool": "modelpool",
    "DictModelPool": "modelpool",
    "RunModelPool": "modelpool",
    "OpenCLIPVisionModelPool": "modelpool",
    "CLIPVisionModelPool": "modelpool",
    "BaseTaskPool": "taskpool",
    "ClassificationTaskPool": "taskpool",
    "CLIPVisionModelTaskPool": "taskpool",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
