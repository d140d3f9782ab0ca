"""The ablation study: every claim about the CNN measured over seeds, with a verdict.

``studies`` declares the studies (typed, from ``parameters_ablation.yml``) and expands them into
runs; ``record`` turns one trained run into a row of results; ``summary`` aggregates the rows
and judges each claim; ``figures`` and ``report`` draw and write them up. No Kedro here: the
``ablation`` pipeline wires these to the catalog.
"""
