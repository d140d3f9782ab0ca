"""The ``hog_svm`` classifiers' parameter models (light: no scikit-learn, so that parameters are
checked before it is imported); ``classifiers.py`` builds and fits them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field

from simple_cnn.params import Float, Int, Model

ClassifierName = Literal["linear_svc", "rbf_svc", "kernel_approx", "sgd"]


def _as_list(value: Any) -> Any:
    return value if isinstance(value, list | tuple) else [value]


Candidates = Annotated[list[Annotated[Float, Field(gt=0)]], BeforeValidator(_as_list),
                       Field(min_length=1)]
"""One positive number, or a list of them: each is fitted on train and scored on val."""


class LinearSvcParams(Model):
    C: Candidates = [0.01]
    max_iter: Int = Field(2000, ge=1)


class RbfSvcParams(Model):
    C: Candidates = [10.0]
    gamma: Literal["scale", "auto"] | Annotated[Float, Field(gt=0)] = "scale"
    max_train_samples: Int = Field(10000, ge=1)
    allow_more_samples: bool = False


class KernelApproxParams(Model):
    method: Literal["nystroem", "rbf_sampler"] = "nystroem"
    pca_components: Int = Field(256, ge=0)
    n_components: Int = Field(4000, ge=1)
    gamma: Float = Field(0.5, gt=0)
    alpha: Candidates = [1.0]


class SgdParams(Model):
    alpha: Candidates = [1.0e-4]
    max_iter: Int = Field(20, ge=1)


ClassifierParams = LinearSvcParams | RbfSvcParams | KernelApproxParams | SgdParams
