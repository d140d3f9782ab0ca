"""The study's statistics: the looks' levels, the intervals, the four verdicts, a study read
look by look, and the whole procedure measured on simulated studies (its familywise error
and its power, as docs/ablation.md states them)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simple_cnn.ablation.design import BUDGET_SHARE, Design, nominal_levels, obrien_fleming_spending
from simple_cnn.ablation.intervals import image_variance, interval, sign_flip_interval
from simple_cnn.ablation.sequential import decision, read_study
from simple_cnn.ablation.simulate import family, familywise_error, power
from simple_cnn.ablation.studies import AblationParams
from simple_cnn.ablation.summary import summarise
from simple_cnn.ablation.verdicts import claim_verdict, part_verdict, seeds_needed

PAIR = {"claim": "b beats a", "test": {"metric": "test_accuracy", "better": "b", "than": "a"},
        "variants": {"a": {}, "b": {}}}


def settings(**changes) -> AblationParams:
    return AblationParams.model_validate({"seeds": list(range(8)), "looks": [4, 8],
                                          "studies": {"one": PAIR}, **changes})


def rows_of(study: str, d_points: list[float], base: float = 0.5) -> list[dict]:
    """Rows whose paired test-accuracy differences are ``d_points`` (points), seed by seed."""
    out = []
    for seed, d in enumerate(d_points):
        for variant, value in (("a", base + 0.01 * seed), ("b", base + 0.01 * seed + d / 100)):
            out.append({"study": study, "variant": variant, "seed": seed, "diverged": False,
                        "namespace": f"ablation.{study}.{variant}.seed_{seed}", "test_accuracy": value,
                        "fingerprint": f"{study}{variant}{seed}", "factors": {}, "n_train": 100,
                        "batch_size": 8, "passes": 1.0, "steps": 10, "converged": False,
                        "along_budget": {p: {"test_accuracy": value} for p in ("0.125", "0.25", "0.5", "1.0")}})
    return out


# ---------------------------------------------------------------------------------- design
def test_the_spending_function_and_the_looks_levels():
    assert obrien_fleming_spending(0.05, 1.0) == pytest.approx(0.05)
    assert obrien_fleming_spending(0.05, 0.25) == pytest.approx(8.8575e-5, rel=1e-3)  # 2 P(Z > 1.96 / 0.5)
    assert obrien_fleming_spending(0.05, 0.0) == 0.0
    # Lan-DeMets O'Brien-Fleming, two-sided 0.05, 5 equal looks: boundaries 4.38, 3.20, 2.55, 2.18,
    # 1.96-ish; as nominal two-sided levels (from published tables of the spending approach)
    levels = nominal_levels(0.05, (1, 2, 3, 4, 5))
    assert levels == pytest.approx((1.17e-5, 0.00194, 0.0107, 0.0242, 0.0391), rel=0.02)
    assert nominal_levels(0.05, (10,)) == pytest.approx((0.05,))  # one look: the level itself
    assert sum(levels) > 0.05  # the looks are correlated: their levels add up to more


def test_the_looks_levels_spend_exactly_the_level_on_the_joint_normal_statistics():
    """Simulated group-sequential z statistics (independent increments) cross the boundaries
    at the spending function's rate, look by look."""
    from scipy.stats import norm

    looks = (3, 6, 10)
    levels = nominal_levels(0.02, looks)
    bounds = [norm.isf(a / 2) for a in levels]
    rng = np.random.default_rng(0)
    increments = rng.normal(size=(400_000, 10))
    crossed = np.zeros(len(increments), bool)
    first = []
    for n, bound in zip(looks, bounds):
        z = increments[:, :n].sum(1) / np.sqrt(n)
        now = ~crossed & (np.abs(z) >= bound)
        first.append(now.mean())
        crossed |= now
    expected = np.diff([0] + [obrien_fleming_spending(0.02, n / 10) for n in looks])
    assert first == pytest.approx(expected, abs=4e-4)
    assert crossed.mean() == pytest.approx(0.02, abs=5e-4)


def test_the_family_splits_the_level_between_claims_parts_and_budget_tests():
    design = Design(alpha=0.05, claims=7, looks=(4, 8, 12))
    assert design.claim_level == pytest.approx(0.05 / 7)
    assert design.part_level(2) == pytest.approx(0.05 / 7 * (1 - BUDGET_SHARE) / 2)
    assert design.budget_level == pytest.approx(0.05 / 7 * BUDGET_SHARE)
    assert design.look_of(8) == 1 and design.look_of(5) is None
    assert design.nominal(design.part_level(1), 2) < design.part_level(1)


# ------------------------------------------------------------------------------- intervals
def test_the_t_interval_is_students_with_the_test_images_error_added():
    d = np.array([1.0, 2.0, 3.0, 2.5, 1.7])
    found = interval(d, 0.05)
    half = 2.776445 * d.std(ddof=1) / math.sqrt(5)  # t(4) at 0.975
    assert (found.low, found.high) == pytest.approx((d.mean() - half, d.mean() + half), rel=1e-5)
    assert found.method == "t" and found.image_se == 0
    wider = interval(d, 0.05, image_variance=0.09)
    half = 2.776445 * math.sqrt(d.var(ddof=1) / 5 + 0.09)
    assert (wider.low, wider.high) == pytest.approx((d.mean() - half, d.mean() + half), rel=1e-5)
    assert wider.image_se == pytest.approx(0.3)


def test_the_test_images_error_counts_what_every_seed_shares_not_the_seeds_noise():
    rng = np.random.default_rng(0)
    images, seeds = 4000, 8
    shared = rng.choice([-1.0, 0.0, 1.0], size=images, p=[0.1, 0.7, 0.2])  # b better on some images
    per_seed = np.where(rng.random((seeds, images)) < 0.3, rng.choice([-1.0, 1.0], (seeds, images)), shared)
    truth = per_seed.mean(0).var()  # not the target: it holds the seeds' noise too
    found = image_variance(per_seed)
    # the shared part's variance over images, per image: 0.7 of the images keep their shared value
    target = np.var(0.7 * shared) / images
    assert found == pytest.approx(target, rel=0.15)
    assert found < truth / images
    assert image_variance(np.zeros((3, 100))) == 0.0
    noise_only = rng.choice([-1.0, 1.0], (seeds, images))
    assert image_variance(noise_only) < 0.05 * noise_only.mean(0).var() / images  # nothing shared


def test_sign_flips_replace_the_t_test_where_the_differences_have_no_spread_or_two_values():
    """Identical differences: the t statistic is infinite, but with 3 seeds the exact sign-flip
    test cannot reject below 1/8 whatever the size; with 10 seeds it reaches 2/1024."""
    few = interval([1.0, 1.0, 1.0], 0.05)
    assert few.method == "sign-flip" and few.low == -math.inf and few.high == math.inf
    many = interval([1.0] * 10, 0.005)
    assert many.low == pytest.approx(1.0) and many.high == pytest.approx(1.0)
    zero_one = interval([0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], 0.05)  # a 0/1 metric
    assert zero_one.method == "sign-flip" and 0 < zero_one.low < 0.9 and zero_one.high == pytest.approx(1.0)
    low, high = sign_flip_interval(np.array([0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]), 0.05)
    # by hand: the largest delta at which P(mean of sign-flipped (d - delta) >= observed) <= 0.025
    flips = np.array(np.meshgrid(*[[-1, 1]] * 10)).reshape(10, -1).T
    d = np.array([0.0] + [1.0] * 9)

    def p_greater(delta):
        x = d - delta
        return np.mean((flips * np.abs(x)).mean(1) >= x.mean() - 1e-12) if np.any(x) else 1.0

    assert p_greater(low - 1e-6) <= 0.025 < p_greater(low + 1e-3)


# -------------------------------------------------------------------------------- verdicts
@pytest.mark.parametrize("low, high, expect, verdict", [
    (1.2, 3.0, "better", "supported"),         # above the minimum effect of 1
    (0.8, 3.0, "better", "open"),              # reaches below it
    (-3.0, -1.1, "better", "contradicted"),    # below minus the minimum effect
    (-0.9, 0.95, "better", "equivalent"),      # inside +-1: no meaningful difference
    (-1.2, 0.5, "better", "open"),
    (-0.9, 3.0, "not_worse", "supported"),     # not worse than -1
    (-3.0, -1.5, "not_worse", "contradicted"),
    (-1.5, 2.0, "not_worse", "open"),
])
def test_the_four_verdicts_read_off_the_interval_symmetrically(low, high, expect, verdict):
    assert part_verdict(low, high, expect, min_effect=1.0, margin=1.0) == verdict


def test_a_band_and_a_claim_of_several_parts():
    assert part_verdict(0.9, 1.2, "within", 0, 0, band=(0.8, 1.3)) == "supported"
    assert part_verdict(1.4, 1.9, "within", 0, 0, band=(0.8, 1.3)) == "contradicted"
    assert part_verdict(0.1, 0.5, "within", 0, 0, band=(0.8, 1.3)) == "contradicted"
    assert part_verdict(1.1, 1.6, "within", 0, 0, band=(0.8, 1.3)) == "open"
    assert claim_verdict(["supported", "supported"]) == "supported"
    assert claim_verdict(["supported", "open"]) == "open"  # the smaller gap, but accuracy unclear
    assert claim_verdict(["supported", "contradicted"]) == "contradicted"
    assert claim_verdict(["equivalent", "open"]) == "equivalent"
    assert claim_verdict(["open", "equivalent"]) == "open"


def test_an_open_claim_says_how_many_seeds_would_decide_it():
    # effect 3 with sd 2 against a minimum effect of 1: statsmodels' one-sided t power at 0.005
    from statsmodels.stats.power import TTestPower

    n = seeds_needed(3.0, 2.0, 0.0, 1.0, 1.0, 0.005)
    assert n == math.ceil(TTestPower().solve_power(1.0, alpha=0.005, power=0.8, alternative="larger"))
    assert 10 <= n <= 20
    assert seeds_needed(1.0, 2.0, 0.0, 1.0, 1.0, 0.005) is None  # the effect sits on the bound
    assert seeds_needed(3.0, 2.0, 1.0, 1.0, 1.0, 0.005) is None  # the images' error alone is too wide


# ------------------------------------------------------------------ a study, look by look
def test_a_clear_effect_is_decided_at_the_first_look_and_its_later_seeds_are_not_needed():
    clear = [5.0, 5.2, 4.9, 5.1, 5.0, 5.1, 4.8, 5.2]
    params = settings(alpha=0.45, studies={"one": PAIR, "two": PAIR})
    read = read_study("one", rows_of("one", clear[:4]), params)
    assert [look["seeds"] for look in read["looks"]] == [4] and not read["open"]
    assert read["last"]["verdict"] == "supported"
    assert decision("one", rows_of("one", clear[:4]), params, 1)["open"] is False
    unclear = [1.0, -2.0, 3.0, 0.5]
    assert decision("one", rows_of("one", unclear), params, 1)["open"] is True
    with pytest.raises(ValueError, match="the rows of the first 1 round\\(s\\) are not all there"):
        decision("one", rows_of("one", unclear[:3]), params, 1)


def test_a_decided_claim_is_read_where_it_was_decided_whatever_came_after():
    params = settings(alpha=0.45, studies={"one": PAIR, "two": PAIR})
    rows = rows_of("one", [5.0, 5.2, 4.9, 5.1, -9.0, -9.0, -9.0, -9.0])
    read = read_study("one", rows, params)
    assert len(read["looks"]) == 1 and read["last"]["verdict"] == "supported"


def test_the_family_is_every_declared_claim_whatever_studies_to_run_says():
    """Differences of 3, 4, 5 points decide the claim the same way alone or beside six others:
    the family is the YAML's, not the selection's."""
    d = [3.0, 4.0, 5.0, 4.0, 3.5, 4.5, 3.0, 5.0]
    seven = {f"c{i}": PAIR for i in range(7)}
    alone = settings(studies=seven, studies_to_run=["c0"])
    together = settings(studies=seven)
    rows = rows_of("c0", d) + [r for i in range(1, 7) for r in rows_of(f"c{i}", [0.1, -0.2, 0.3, 0.0] * 2)]
    by_itself = summarise(rows_of("c0", d), alone)["studies"]["c0"]
    beside = summarise(rows, together)["studies"]["c0"]
    assert by_itself["verdict"] == beside["verdict"] == "supported"
    assert by_itself["parts"][0]["interval"] == beside["parts"][0]["interval"]
    assert summarise(rows_of("c0", d), alone)["claims_judged_together"] == 7


def test_the_budget_dependence_is_the_change_of_the_effect_itself():
    """A constant effect at every budget point is not budget-dependent, whatever its verdicts; an
    effect that grows from the earliest point to the end is."""
    params = settings(looks=[8], studies={"one": PAIR}, budget_points=[0.125, 0.25, 0.5, 1.0])
    d = [3.0, 3.1, 2.9, 3.2, 3.0, 2.8, 3.1, 3.0]
    steady = summarise(rows_of("one", d), params)["studies"]["one"]
    assert steady["budget"]["tested"] and not steady["budget"]["dependent"]
    assert steady["budget"]["change"]["mean"] == pytest.approx(0.0, abs=1e-9)
    growing = rows_of("one", d)
    behind = iter([10.5, 9.0, 11.0, 10.0, 9.5, 10.2, 9.8, 10.0])  # points behind early on, per seed
    for row in growing:
        if row["variant"] == "b":
            row["along_budget"]["0.125"]["test_accuracy"] -= next(behind) / 100
    study = summarise(growing, params)["studies"]["one"]
    assert study["verdict"] == "supported" and study["budget"]["dependent"]
    assert study["budget"]["change"]["mean"] == pytest.approx(10.0, abs=1e-6)
    assert [p["fraction"] for p in study["budget"]["along"]] == [0.125, 0.25, 0.5, 1.0]


# ------------------------------------------------------- the whole procedure, simulated
def test_the_procedure_as_applied_keeps_the_familywise_error_below_alpha():
    """Seven claims at the edge of every verdict (true effects exactly at the minimum effect, at
    minus it, and at the margin), two looks and the cap: at most 5 % of studies make any false
    decision. Measured: about 2 %."""
    params = family(7, 8, [4, 8])
    edge = familywise_error(params, [1.0, 1.0, -1.0, -1.0, 1.0, -1.0, 1.0], sd=1.5, studies=1500, seed=1)
    assert edge["familywise_error"] <= 0.05
    null = familywise_error(params, [0.0] * 7, sd=1.5, studies=500, seed=2)
    assert null["familywise_error"] <= 0.05


def test_the_procedure_has_the_power_the_docs_state():
    """docs/ablation.md's table, rechecked: a 5-point effect at a seed spread of 2 points is
    supported in 90 % of studies with a cap of 8 (looks at 4 and 8), and a 3-point one at a
    spread of 1.5 in 75 % with a cap of 12."""
    assert power(5.0, 2.0, 8, [4, 8], studies=300, seed=3)["supported"] >= 0.85
    assert power(3.0, 1.5, 12, [4, 8, 12], studies=300, seed=4)["supported"] >= 0.75
    assert power(-5.0, 2.0, 8, [4, 8], studies=300, seed=5)["contradicted"] >= 0.85


def test_no_meaningful_difference_is_reached_on_a_null_with_enough_seeds():
    """Equal variants with a seed spread of 0.5 points: with 20 seeds the interval fits inside
    the 1-point margin (equivalent) in nearly every study; with 4, in few."""
    assert power(0.0, 0.5, 20, [10, 20], studies=200, seed=6)["equivalent"] >= 0.9
    assert power(0.0, 0.5, 4, [4], studies=200, seed=7)["equivalent"] <= 0.2
