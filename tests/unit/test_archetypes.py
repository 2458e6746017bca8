import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from ml.archetypes import (
    ARCHETYPE_MIN_SCORE,
    BEHAVIOUR_ARCHETYPES,
    NO_WEB_ACTIVITY,
    describe_cluster,
    label_segments,
    name_clusters,
)
from ml.clustering import NO_WEB_ACTIVITY_CLUSTER, PURCHASE_MODE, cluster_customers

SEED_ARCHETYPES = [archetype.name for archetype in BEHAVIOUR_ARCHETYPES]
NO_EVENTS = "none"


def planted_shop(n_customers: int, seed: int = 0, no_event_share: float = 0.2) -> pd.DataFrame:
    """customer_features-shaped frame where each customer with events follows one of the five seed archetypes.

    Baseline browsing is a low share of each page family; an archetype raises its signature features
    (the column `planted` holds the truth). Noise is wide enough that clusters overlap a little.
    """
    rng = np.random.default_rng(seed)
    planted = rng.choice(SEED_ARCHETYPES, size=n_customers)
    planted = np.where(rng.random(n_customers) < no_event_share, NO_EVENTS, planted)
    is_ = {name: planted == name for name in [*SEED_ARCHETYPES, NO_EVENTS]}

    def share(signature_of: str | list[str], high: tuple[float, float], low: tuple[float, float]) -> np.ndarray:
        owners = np.isin(planted, [signature_of] if isinstance(signature_of, str) else signature_of)
        return np.where(owners, rng.beta(*high, n_customers), rng.beta(*low, n_customers))

    order_count = rng.geometric(0.55, n_customers)
    discount_rate = np.where(is_["Discount Seekers"], 0.75, 0.15)
    frame = pd.DataFrame(
        {
            "customer_id": [f"c{i:06d}" for i in range(n_customers)],
            "planted": planted,
            "recency_days": rng.integers(0, 720, n_customers),
            "tenure_days": rng.integers(720, 1500, n_customers),
            "order_count": order_count,
            "avg_order_value": rng.lognormal(4.0, 0.6, n_customers),
            "discounted_order_share": rng.binomial(order_count, discount_rate) / order_count,
            "mean_days_between_orders": np.where(order_count > 1, rng.gamma(2.0, 60.0, n_customers), np.nan),
            "product_views_per_active_day": np.where(
                is_["High-Intent Researchers"],
                rng.lognormal(2.0, 0.35, n_customers),
                rng.lognormal(1.0, 0.4, n_customers),
            ),
            "research_share": share("High-Intent Researchers", (8, 20), (2, 40)),
            "sale_share": share("Discount Seekers", (8, 20), (2, 40)),
            "discount_event_share": share("Discount Seekers", (4, 30), (1, 80)),
            "shipping_abandon_rate": share("Discount Seekers", (6, 6), (2, 10)),
            "brand_share": share("Brand-Focused Explorers", (8, 20), (2, 40)),
            "visual_share": share("Visual Browsers", (8, 20), (2, 40)),
            "urgency_share": share("Urgency-Driven Buyers", (6, 20), (1, 50)),
        }
    )
    frame["total_revenue"] = frame["avg_order_value"] * frame["order_count"]
    frame["has_web_events"] = ~is_[NO_EVENTS]
    frame["event_count"] = np.where(is_[NO_EVENTS], 0, rng.integers(5, 200, n_customers))
    behaviour = [
        "product_views_per_active_day", "research_share", "sale_share", "discount_event_share",
        "shipping_abandon_rate", "brand_share", "visual_share", "urgency_share",
    ]  # fmt: skip
    frame.loc[is_[NO_EVENTS], behaviour] = 0.0  # the dbt mart gives 0 when a customer has no events
    return frame


@pytest.fixture(scope="module")
def planted() -> pd.DataFrame:
    return planted_shop(4000, seed=11)


@pytest.fixture(scope="module")
def planted_result(planted):
    return cluster_customers(planted, seed=0)


def test_planted_archetypes_are_recovered_with_their_five_names(planted, planted_result):
    segments = label_segments(planted_result.labels, name_clusters(planted_result.profiles))
    assert planted_result.mode == "behaviour"
    assert set(SEED_ARCHETYPES) <= set(segments["behavioral_segment"])
    has_events = planted["has_web_events"].to_numpy()
    ari = adjusted_rand_score(planted["planted"][has_events], segments["behavioral_segment"][has_events])
    assert ari >= 0.8
    # Each recovered name sits on the customers planted with that archetype.
    matches = segments["behavioral_segment"].to_numpy() == planted["planted"].to_numpy()
    for name in SEED_ARCHETYPES:
        assert matches[planted["planted"].to_numpy() == name].mean() >= 0.8, name


def test_customers_without_events_are_named_no_web_activity(planted, planted_result):
    segments = label_segments(planted_result.labels, name_clusters(planted_result.profiles))
    no_events = ~planted["has_web_events"].to_numpy()
    assert (segments["cluster_id"][no_events] == NO_WEB_ACTIVITY_CLUSTER).all()
    assert (segments["behavioral_segment"][no_events] == NO_WEB_ACTIVITY).all()
    assert (segments["behavioral_segment"][~no_events] != NO_WEB_ACTIVITY).all()


def test_names_are_the_same_on_a_rerun(planted, planted_result):
    again = cluster_customers(planted, seed=0)
    assert name_clusters(again.profiles) == name_clusters(planted_result.profiles)


def _profiles(z_by_cluster: dict[int, dict[str, float]]) -> pd.DataFrame:
    rows = [
        {"cluster_id": cluster_id, "n_customers": 100, "feature": feature, "mean": z, "base_mean": 0.0, "z_score": z}
        for cluster_id, z_by_feature in z_by_cluster.items()
        for feature, z in z_by_feature.items()
    ]
    return pd.DataFrame(rows)


def test_two_clusters_matching_one_archetype_get_unique_names():
    profiles = _profiles(
        {
            0: {"sale_share": 2.0, "discount_event_share": 1.5, "research_share": -0.4, "brand_share": 0.0},
            1: {"sale_share": 1.2, "discount_event_share": 0.9, "research_share": -0.8, "brand_share": 0.1},
            2: {"sale_share": -0.5, "discount_event_share": -0.5, "research_share": 0.1, "brand_share": 2.5},
        }
    )
    names = name_clusters(profiles)
    assert names[0] == "Discount Seekers"  # the stronger match wins the archetype
    assert names[2] == "Brand-Focused Explorers"
    assert names[1] == "High sale share, frequent discount codes"
    assert len(set(names.values())) == 3


def test_a_weak_profile_is_not_given_an_archetype_name():
    weak = ARCHETYPE_MIN_SCORE - 0.1
    profiles = _profiles(
        {0: {"visual_share": weak, "research_share": -0.35}, 1: {"visual_share": -weak, "research_share": 0.35}}
    )
    names = name_clusters(profiles)
    assert "Visual Browsers" not in names.values()
    assert names == {0: "Gallery and video use, little research", 1: "Little gallery use, heavy research"}


def test_identical_profiles_still_get_unique_names():
    profiles = _profiles({0: {"brand_share": 0.1}, 1: {"brand_share": 0.1}, 2: {"brand_share": 0.1}})
    names = name_clusters(profiles)
    assert len(set(names.values())) == 3
    assert names[0] == "Average browsers"


def test_purchase_mode_profiles_get_purchase_names():
    profiles = _profiles(
        {
            0: {"order_count": 2.0, "avg_order_value": 1.5, "recency_days": -0.5, "discounted_order_share": 0.0},
            1: {"order_count": -0.3, "avg_order_value": -0.2, "recency_days": 1.4, "discounted_order_share": 0.0},
            2: {"order_count": -0.3, "avg_order_value": -0.3, "recency_days": -0.2, "discounted_order_share": 2.0},
        }
    )
    assert name_clusters(profiles) == {0: "Frequent high spenders", 1: "Lapsed buyers", 2: "Deal-driven buyers"}


def test_a_purchase_archetype_is_not_given_on_part_of_its_signature():
    # Regression: five customers with one order each (order_count does not vary, so it is not profiled); the most
    # recent buyers were named "Loyal regulars" ("many orders, the last one recent") on recency alone.
    profiles = _profiles(
        {
            0: {"avg_order_value": -1.41, "recency_days": 1.41, "mean_days_between_orders": 1.41},
            1: {"avg_order_value": 1.06, "recency_days": -1.06, "mean_days_between_orders": -1.06},
        }
    )
    names = name_clusters(profiles, PURCHASE_MODE)
    assert not {"Loyal regulars", "Recent first-timers", "Big-basket one-timers"} & set(names.values()), names
    assert names[0] == "Lapsed buyers"


def test_descriptive_name_uses_the_largest_differences_first():
    name = describe_cluster(pd.Series({"sale_share": 0.9, "research_share": -1.4, "brand_share": 0.1}))
    assert name == "Little research, high sale share"


def test_a_cluster_without_a_name_is_an_error():
    labels = pd.DataFrame({"customer_id": ["a", "b"], "cluster_id": [0, 3]})
    with pytest.raises(ValueError, match="without a name"):
        label_segments(labels, {0: "Visual Browsers"})


def test_empty_profiles_give_no_names():
    assert name_clusters(_profiles({})) == {}


def test_generic_clusters_are_named_from_the_shops_own_event_types_and_never_as_archetypes():
    from tests.unit.test_clustering import foreign_vocabulary_features

    features = foreign_vocabulary_features(1200, seed=1)
    result = cluster_customers(features, seed=0)
    labels = {"event_type_share_1": "catalog", "event_type_share_2": "cart", "event_type_share_3": "payment_done"}
    names = name_clusters(result.profiles, result.mode, labels)
    assert result.mode == "generic" and len(names) == 3
    assert not set(names.values()) & set(SEED_ARCHETYPES)
    assert len(set(names.values())) == 3
    # Each planted group is high on its own event type, and its name says so first.
    segments = label_segments(result.labels, names).merge(features[["customer_id", "group"]], on="customer_id")
    majority = segments.groupby("group")["behavioral_segment"].agg(lambda found: found.mode().iloc[0])
    for group, event_name in enumerate(["catalog", "cart", "payment_done"]):
        assert majority[group].startswith(f"Many {event_name} events"), majority.to_dict()
    # Inferred from the columns as well: event-type shares mean generic mode.
    assert name_clusters(result.profiles, feature_labels=labels) == names


def test_an_archetype_needs_an_event_based_signature_feature_not_orders_alone():
    profiles = _profiles(
        {0: {"discounted_order_share": 2.0, "research_share": 0.0}, 1: {"discounted_order_share": -1.0}}
    )
    names = name_clusters(profiles, mode="behaviour")
    assert "Discount Seekers" not in names.values()


def identical_buyers(n_customers: int) -> pd.DataFrame:
    """Orders-only customer_features of a shop whose customers all bought once, the same amount, the same day."""
    return pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(n_customers)],
            "recency_days": 0,
            "tenure_days": 0,
            "order_count": 1,
            "avg_order_value": 50.0,
            "discounted_order_share": 0.0,
            "mean_days_between_orders": np.nan,
        }
    )


@pytest.mark.parametrize("n_customers", [1, 20])
def test_a_shop_whose_features_do_not_vary_gets_one_named_segment(n_customers):
    # Found on a one-customer shop: no feature varies, so no profile, and labelling raised "clusters without a name".
    result = cluster_customers(identical_buyers(n_customers), seed=0)
    assert result.profiles.empty and set(result.labels["cluster_id"]) == {0}
    segments = label_segments(result.labels, name_clusters(result.profiles, result.mode, {}, result.k))
    assert len(segments) == n_customers
    assert set(segments["behavioral_segment"]) == {"Average buyers"}


def test_profiled_clusters_keep_their_names_when_k_is_given(planted_result):
    names = name_clusters(planted_result.profiles)
    assert name_clusters(planted_result.profiles, n_clusters=planted_result.k) == names
