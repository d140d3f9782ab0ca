"""ablation: every variant x seed of the studies in parameters_ablation.yml, each the cnn
training in a namespace of its own, then the summary, verdicts, figures and report."""

from simple_cnn.pipelines.ablation.pipeline import create_pipeline

__all__ = ["create_pipeline"]
