"""Evaluating reward models: EPIC distances, reward landscapes and labelled state datasets.

Submodules import their heavy dependencies (torch, matplotlib, MuJoCo) lazily:

- :mod:`vlmrm.evaluation.epic`: the EPIC pseudometric between reward functions.
- :mod:`vlmrm.evaluation.landscape`: rewards along one state variable (``vlmrm landscape``).
- :mod:`vlmrm.evaluation.dataset`: collecting frames with their simulator states (``vlmrm dataset collect``).
- :mod:`vlmrm.evaluation.labelling`: the local labelling web page (``vlmrm dataset label``).
- :mod:`vlmrm.evaluation.epic_study`: EPIC distance of reward models to labels (``vlmrm epic``).
"""
