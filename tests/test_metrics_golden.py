"""lens_hf.metrics.functional reproduces the figures of its earlier hand-written version.

`tests/golden/metrics.json` holds inputs and outputs recorded with the hand-written ROC curve, ROC AUC,
average precision, TPR-at-FPR and confusion matrix, before they were delegated to scikit-learn: tied
scores, binary and 3-class problems, logits, a class that is never predicted, and imbalanced lens
finding. Every number must agree to 1e-12, every curve point by point, and every result must keep its
keys and its Python types (plain floats, ints and lists, ready for `json.dump`).
"""
import json
import math
from pathlib import Path

import pytest

from lens_hf.metrics import functional

GOLDEN = json.loads((Path(__file__).parent / "golden" / "metrics.json").read_text())["cases"]
TOLERANCE = 1e-12


def assert_same(actual, expected, where="result"):
    """Equal structure, keys and types; floats within TOLERANCE (inf only equals inf)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: expected a dict, got {type(actual).__name__}"
        assert list(actual) == list(expected), f"{where}: keys {list(actual)} != {list(expected)}"
        for key in expected:
            assert_same(actual[key], expected[key], f"{where}[{key!r}]")
    elif isinstance(expected, list):
        assert isinstance(actual, list), f"{where}: expected a list, got {type(actual).__name__}"
        assert len(actual) == len(expected), f"{where}: {len(actual)} entries, expected {len(expected)}"
        for index, (a, e) in enumerate(zip(actual, expected)):
            assert_same(a, e, f"{where}[{index}]")
    elif isinstance(expected, float):
        assert type(actual) is float, f"{where}: expected a float, got {type(actual).__name__}"
        if math.isinf(expected) or math.isinf(actual):
            assert actual == expected, f"{where}: {actual} != {expected}"
        else:
            assert abs(actual - expected) <= TOLERANCE, f"{where}: {actual!r} != {expected!r}"
    else:
        assert type(actual) is type(expected) and actual == expected, f"{where}: {actual!r} != {expected!r}"


@pytest.mark.parametrize("name", sorted(GOLDEN["binary_curves"]))
def test_binary_curves_match_golden(name):
    case = GOLDEN["binary_curves"][name]
    labels, scores = case["labels"], case["scores"]
    assert_same(functional.roc_curve(labels, scores), case["roc_curve"], f"{name} roc_curve")
    assert_same(functional.roc_auc(labels, scores), case["roc_auc"], f"{name} roc_auc")
    assert_same(functional.average_precision(labels, scores), case["average_precision"], f"{name} AP")
    for target, expected in case["tpr_at_fpr"].items():
        assert_same(functional.tpr_at_fpr(labels, scores, float(target)), expected, f"{name} tpr_at_fpr({target})")


@pytest.mark.parametrize("name", sorted(GOLDEN["classification"]))
def test_classification_matches_golden(name):
    case = GOLDEN["classification"][name]
    result = functional.classification_metrics(case["predictions"], case["references"], case["class_names"],
                                               case["from_logits"])
    assert_same(result, case["result"], name)


@pytest.mark.parametrize("name", sorted(GOLDEN["lens_finding"]))
def test_lens_finding_matches_golden(name):
    case = GOLDEN["lens_finding"][name]
    inputs = GOLDEN["binary_curves"][case["inputs"]]
    result = functional.lens_finding_metrics(inputs["scores"], inputs["labels"], case["threshold"],
                                             case["fpr_targets"])
    assert_same(result, case["result"], name)


def test_golden_results_are_json_ready():
    case = GOLDEN["classification"]["three_class_rounded"]
    result = functional.classification_metrics(case["predictions"], case["references"], case["class_names"])
    assert json.loads(json.dumps(result)) == result


def test_softmax_ties_are_exact_ties_on_every_cpu():
    """The logits case has softmax values that are equal in exact arithmetic; computed with 50 digits and ranked
    with exact ties, its micro AUC is the one the metric reports (float exp alone orders them by its last bit)."""
    import mpmath
    import numpy as np

    mpmath.mp.dps = 50
    case = GOLDEN["classification"]["three_class_logits"]
    probabilities = []
    for row in case["predictions"]:
        exps = [mpmath.e ** mpmath.mpf(str(v)) for v in row]
        probabilities += [x / sum(exps) for x in exps]
    distinct = sorted({mpmath.nstr(p, 40) for p in probabilities})
    ranks = np.array([distinct.index(mpmath.nstr(p, 40)) for p in probabilities], dtype=float)
    one_hot = np.eye(len(case["predictions"][0]))[np.asarray(case["references"])].ravel()
    assert len(distinct) < len(probabilities)  # the case does hold exact ties
    exact = functional.roc_auc(one_hot, ranks)
    reported = functional.classification_metrics(case["predictions"], case["references"], case["class_names"],
                                                 from_logits=True)["roc_auc_micro"]
    assert abs(reported - exact) <= 1e-12, (reported, exact)
