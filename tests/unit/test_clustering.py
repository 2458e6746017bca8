import numpy as np
import pandas as pd
import pytest
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score
from threadpoolctl import threadpool_limits

from ml import clustering
from ml.clustering import (
    BEHAVIOUR_COLUMNS,
    GENERIC_COLUMNS,
    GENERIC_MODE,
    NO_WEB_ACTIVITY_CLUSTER,
    PROFILE_COLUMNS,
    PURCHASE_COLUMNS,
    bootstrap_stability,
    cluster_customers,
    prepare_raw_features,
)
from ml.feature_columns import TOP_EVENT_TYPE_COUNT


def blob_features(n_customers: int, n_groups: int, seed: int = 0, with_events: float = 1.0) -> pd.DataFrame:
    """customer_features-shaped frame: group g browses mostly page family g (a share near 0.4, others near 0.03)."""
    rng = np.random.default_rng(seed)
    group = rng.integers(0, n_groups, n_customers)
    frame = pd.DataFrame({"customer_id": [f"c{i:06d}" for i in range(n_customers)], "group": group})
    for position, column in enumerate(BEHAVIOUR_COLUMNS):
        centre = np.where(group == position, 0.4, 0.03)
        frame[column] = np.clip(centre + rng.normal(0, 0.04, n_customers), 0, 1)
    frame["product_views_per_active_day"] = rng.lognormal(1.0, 0.3, n_customers)
    frame["has_web_events"] = rng.random(n_customers) < with_events
    frame.loc[~frame["has_web_events"], list(BEHAVIOUR_COLUMNS)] = 0.0
    recent, old = rng.integers(0, 60, n_customers), rng.integers(300, 700, n_customers)
    frame["recency_days"] = np.where(group % 2 == 0, recent, old)
    frame["order_count"] = np.where(group < 2, rng.integers(4, 9, n_customers), 1)
    frame["avg_order_value"] = np.where(group == 0, rng.normal(300, 20, n_customers), rng.normal(50, 10, n_customers))
    frame["mean_days_between_orders"] = np.where(frame["order_count"] > 1, rng.gamma(3, 20, n_customers), np.nan)
    frame["tenure_days"] = frame["recency_days"] + rng.integers(0, 400, n_customers)
    frame["total_revenue"] = frame["avg_order_value"] * frame["order_count"]
    return frame


@pytest.fixture(scope="module")
def four_groups() -> pd.DataFrame:
    # Groups 1..4 browse research, sale, discount codes and shipping pages; group index 0 is product depth,
    # which we overwrite, so use groups 1..4 only.
    frame = blob_features(2000, 5, seed=3)
    return frame[frame["group"] > 0].reset_index(drop=True)


@pytest.fixture(scope="module")
def four_groups_result(four_groups):
    return cluster_customers(four_groups, seed=0)


def test_the_number_of_clusters_is_chosen_from_the_data(four_groups, four_groups_result):
    assert four_groups_result.k == 4
    assert adjusted_rand_score(four_groups["group"], four_groups_result.labels["cluster_id"]) > 0.95
    assert four_groups_result.k_scores["k"].tolist() == [3, 4, 5, 6, 7, 8]
    assert four_groups_result.k_scores["is_chosen"].sum() == 1


def test_quality_numbers_are_reported_for_the_chosen_k(four_groups_result):
    chosen = four_groups_result.k_scores.set_index("k").loc[four_groups_result.k]
    assert four_groups_result.silhouette == chosen["silhouette"] == four_groups_result.k_scores["silhouette"].max()
    assert four_groups_result.davies_bouldin == chosen["davies_bouldin"] < 1.5
    assert four_groups_result.stability_ari_mean == chosen["stability_ari_mean"] > 0.95
    metadata = four_groups_result.metadata()
    assert metadata["k"] == 4 and metadata["mode"] == "behaviour"


def test_stability_is_low_when_there_is_no_structure():
    rng = np.random.default_rng(0)
    noise = rng.normal(size=(1500, 4))
    blobs = np.concatenate([rng.normal(loc=10 * centre, size=(300, 4)) for centre in range(5)])
    with threadpool_limits(limits=1):
        noise_model = KMeans(5, n_init=4, random_state=0).fit(noise)
        blob_model = KMeans(5, n_init=4, random_state=0).fit(blobs)
    noise_stability = bootstrap_stability(noise_model, noise, seed=0)
    blob_stability = bootstrap_stability(blob_model, blobs, seed=0)
    assert blob_stability > 0.95
    assert noise_stability < 0.8


def test_profiles_show_each_cluster_high_on_its_planted_feature(four_groups, four_groups_result):
    profiles = four_groups_result.profiles
    assert list(profiles.columns) == PROFILE_COLUMNS
    assert len(profiles) == 4 * len(four_groups_result.feature_columns)
    top_feature = profiles.loc[profiles.groupby("cluster_id")["z_score"].idxmax(), "feature"]
    assert set(top_feature) == {"research_share", "sale_share", "discount_event_share", "shipping_abandon_rate"}
    assert profiles.groupby("cluster_id")["n_customers"].first().sum() == len(four_groups)


def test_customers_without_events_get_the_no_web_activity_cluster():
    features = blob_features(1500, 4, seed=5, with_events=0.7)
    result = cluster_customers(features, seed=0)
    no_events = ~features["has_web_events"].to_numpy()
    assert result.mode == "behaviour"
    assert (result.labels["cluster_id"][no_events] == NO_WEB_ACTIVITY_CLUSTER).all()
    assert (result.labels["cluster_id"][~no_events] >= 0).all()
    assert result.n_clustered == (~no_events).sum()
    assert any("no web activity" in note for note in result.notes)


def test_orders_only_base_falls_back_to_purchase_behaviour_and_says_so():
    features = blob_features(1200, 4, seed=1, with_events=0.0)
    result = cluster_customers(features, seed=0)
    assert result.mode == "purchase"
    assert set(result.feature_columns) <= set(PURCHASE_COLUMNS)
    assert (result.labels["cluster_id"] >= 0).all()
    assert any(note.startswith("Purchase mode") for note in result.notes)


def test_a_handful_of_customers_with_events_is_not_enough_for_behaviour_mode():
    features = blob_features(2000, 4, seed=2, with_events=0.01)
    result = cluster_customers(features, seed=0)
    assert result.mode == "purchase"


def test_behaviour_columns_without_variation_fall_back_to_purchase_mode():
    features = blob_features(800, 4, seed=2)
    features[list(BEHAVIOUR_COLUMNS)] = 0.0  # events exist but none matched the expected vocabulary
    result = cluster_customers(features, seed=0)
    assert result.mode == "purchase"
    assert any("do not vary" in note for note in result.notes)


def test_missing_behaviour_columns_fall_back_to_purchase_mode():
    features = blob_features(600, 4, seed=2).drop(columns=["urgency_share"])
    assert cluster_customers(features, seed=0).mode == "purchase"


def test_large_bases_are_fitted_on_a_sample_and_everyone_is_assigned(monkeypatch):
    monkeypatch.setattr(clustering, "FIT_SAMPLE_SIZE", 500)
    features = blob_features(3000, 5, seed=4)
    features = features[features["group"] > 0].reset_index(drop=True)
    result = cluster_customers(features, seed=0, k_range=range(3, 6))
    assert result.fit_sample_size == 500
    assert len(result.labels) == len(features) and (result.labels["cluster_id"] >= 0).all()
    assert adjusted_rand_score(features["group"], result.labels["cluster_id"]) > 0.95
    assert any("sample of 500" in note for note in result.notes)


def test_same_seed_gives_the_same_labels(four_groups, four_groups_result):
    again = cluster_customers(four_groups, seed=0)
    pd.testing.assert_frame_equal(again.labels, four_groups_result.labels)


def test_too_few_distinct_customers_end_in_one_cluster_without_error():
    features = blob_features(60, 4, seed=0).head(2)
    result = cluster_customers(features, seed=0)
    assert result.k == 1
    assert set(result.labels["cluster_id"]) == {0}
    assert np.isnan(result.silhouette)


def test_empty_base_gives_empty_labels():
    result = cluster_customers(blob_features(10, 3).head(0), seed=0)
    assert result.labels.empty and list(result.labels.columns) == ["customer_id", "cluster_id"]


def test_one_order_customers_gap_is_their_tenure_not_zero():
    frame = pd.DataFrame({"mean_days_between_orders": [np.nan, 30.0], "tenure_days": [400, 500]})
    raw = prepare_raw_features(frame, ["mean_days_between_orders"])
    assert raw["mean_days_between_orders"].tolist() == [400.0, 30.0]


def foreign_vocabulary_features(n_customers: int, seed: int = 0, mapped_share: float = 0.0) -> pd.DataFrame:
    """customer_features-shaped frame of a shop whose events do not map: the mapped behaviour shares are 0, and
    three planted groups differ in their mix of the shop's own event types (ranks 1..3) and in session length."""
    rng = np.random.default_rng(seed)
    group = rng.integers(0, 3, n_customers)
    frame = pd.DataFrame({"customer_id": [f"c{i:06d}" for i in range(n_customers)], "group": group})
    for column in BEHAVIOUR_COLUMNS:
        frame[column] = 0.0
    frame["discounted_order_share"] = rng.random(n_customers) < 0.2
    frame["has_web_events"] = True
    frame["event_count"] = rng.integers(5, 200, n_customers)
    frame["mapped_event_share"] = mapped_share
    for rank in range(1, TOP_EVENT_TYPE_COUNT + 1):
        centre = np.where(group == rank - 1, 0.5, 0.05) if rank <= 3 else np.full(n_customers, 0.02)
        frame[f"event_type_share_{rank}"] = np.clip(centre + rng.normal(0, 0.03, n_customers), 0, 1)
    frame["active_days"] = rng.integers(1, 20, n_customers)
    frame["sessions_per_active_day"] = 1 + rng.random(n_customers) * 0.2
    frame["avg_session_minutes"] = np.where(group == 2, 25.0, 5.0) + rng.normal(0, 1, n_customers)
    frame["events_per_session"] = rng.lognormal(1.5, 0.2, n_customers)
    for column in ("mobile_share", "tablet_share", "desktop_share"):
        frame[column] = rng.random(n_customers) / 3
    for column in ("night_share", "morning_share", "afternoon_share", "evening_share"):
        frame[column] = rng.random(n_customers) / 4
    frame["recency_days"] = rng.integers(0, 400, n_customers)
    frame["order_count"] = rng.integers(1, 4, n_customers)
    frame["avg_order_value"] = rng.normal(80, 10, n_customers)
    frame["mean_days_between_orders"] = np.nan
    frame["tenure_days"] = frame["recency_days"] + 30
    return frame


def test_events_that_do_not_map_are_clustered_on_the_generic_features_not_on_orders():
    features = foreign_vocabulary_features(1200, seed=1)
    result = cluster_customers(features, seed=0)
    assert result.mode == GENERIC_MODE
    assert set(result.feature_columns) <= set(GENERIC_COLUMNS)
    assert result.mapped_event_coverage == 0.0
    assert result.metadata()["mapped_event_coverage"] == 0.0
    assert adjusted_rand_score(features["group"], result.labels["cluster_id"]) > 0.95
    assert any(note.startswith("Generic mode: only 0% of the events map") for note in result.notes)


def test_varying_mapped_shares_with_too_little_mapped_coverage_still_use_the_generic_features():
    features = foreign_vocabulary_features(800, seed=2, mapped_share=0.5)
    rng = np.random.default_rng(0)
    features["research_share"] = rng.random(len(features)) * 0.1
    features["sale_share"] = rng.random(len(features)) * 0.1
    result = cluster_customers(features, seed=0)
    assert result.mode == GENERIC_MODE
    assert result.mapped_event_coverage == pytest.approx(0.5)


def test_well_mapped_events_keep_the_behaviour_mode(four_groups):
    features = four_groups.assign(mapped_event_share=0.95, event_count=10)
    assert cluster_customers(features, seed=0, k_range=range(4, 5)).mode == "behaviour"


@pytest.fixture(scope="module")
def mixed_base() -> pd.DataFrame:
    # A third without events (cluster -1) and one-order customers without a gap (median fill): both must behave
    # in a chunk exactly as in the whole table.
    return blob_features(1500, 5, seed=11, with_events=0.7)


@pytest.fixture(scope="module")
def mixed_fit(mixed_base) -> clustering.FittedClusters:
    return clustering.fit_clusters(mixed_base, seed=0, k_range=range(3, 6))


def _chunks(frame: pd.DataFrame, size: int) -> list[pd.DataFrame]:
    return [frame.iloc[start : start + size] for start in range(0, len(frame), size)]


def test_assigning_in_chunks_gives_the_labels_of_the_whole_table(mixed_base, mixed_fit):
    whole = clustering.assign_clusters(mixed_base, mixed_fit)
    assert (whole["cluster_id"] == NO_WEB_ACTIVITY_CLUSTER).sum() == (~mixed_base["has_web_events"]).sum()
    for size in (1, 97, 500):
        chunked = pd.concat([clustering.assign_clusters(c, mixed_fit) for c in _chunks(mixed_base, size)])
        pd.testing.assert_frame_equal(chunked.reset_index(drop=True), whole)


def test_a_chunk_fills_gaps_with_the_fitted_median_not_its_own():
    # Purchase mode clusters on the gap; without tenure_days a missing gap gets the fitted base's median, which a
    # chunk of one-order customers alone could not compute (its own median would be missing, filled with 0).
    base = blob_features(600, 5, seed=5, with_events=0.0).drop(columns="tenure_days")
    fitted = clustering.fit_clusters(base, seed=0, k_range=range(3, 5), n_bootstrap=2)
    assert fitted.mode == clustering.PURCHASE_MODE
    median = base["mean_days_between_orders"].median()
    assert fitted.fill_values["mean_days_between_orders"] == pytest.approx(median)
    one_order = base[base["mean_days_between_orders"].isna()].head(40)
    raw = prepare_raw_features(one_order, ["mean_days_between_orders"], fitted.fill_values)
    assert (raw["mean_days_between_orders"] == median).all()
    whole = clustering.assign_clusters(base, fitted).set_index("customer_id")["cluster_id"]
    chunk = clustering.assign_clusters(one_order, fitted).set_index("customer_id")["cluster_id"]
    pd.testing.assert_series_equal(chunk, whole.loc[chunk.index])


def test_cluster_customers_is_the_fit_then_the_assignment(mixed_base, mixed_fit):
    result = cluster_customers(mixed_base, seed=0, k_range=range(3, 6))
    pd.testing.assert_frame_equal(result.labels, clustering.assign_clusters(mixed_base, mixed_fit))
    assert result.k == mixed_fit.k and result.feature_columns == mixed_fit.feature_columns


def test_profiles_from_chunk_partial_sums_equal_the_whole_table_profiles(mixed_base, mixed_fit):
    result = cluster_customers(mixed_base, seed=0, k_range=range(3, 6))
    partials = []
    for chunk in _chunks(mixed_base, 200):
        ids = clustering.assign_clusters(chunk, mixed_fit)["cluster_id"].to_numpy()
        clustered = ids != NO_WEB_ACTIVITY_CLUSTER
        raw = prepare_raw_features(chunk.loc[clustered], mixed_fit.feature_columns, mixed_fit.fill_values)
        partials.append(clustering.profile_partials(raw, ids[clustered]))
    merged = clustering.profiles_from_partials(pd.concat(partials, ignore_index=True))
    pd.testing.assert_frame_equal(merged, result.profiles, check_exact=False, rtol=1e-9, atol=1e-12)
    assert clustering.profiles_from_partials(clustering.profile_partials(pd.DataFrame(), np.array([]))).empty


def test_the_clustering_reads_only_its_input_columns(mixed_base):
    extra = mixed_base.assign(unrelated=1.0, group_label="x")
    narrow = extra[[column for column in clustering.INPUT_COLUMNS if column in extra.columns]]
    a = clustering.fit_clusters(extra, seed=0, k_range=range(3, 5), n_bootstrap=2)
    b = clustering.fit_clusters(narrow, seed=0, k_range=range(3, 5), n_bootstrap=2)
    pd.testing.assert_frame_equal(a.k_scores, b.k_scores)
    np.testing.assert_array_equal(a.model.cluster_centers_, b.model.cluster_centers_)


@pytest.mark.parametrize("frame", ["four_groups", "foreign"])
def test_the_input_columns_alone_give_the_same_clusters_as_the_whole_mart(frame, request):
    # ml/behavioral_segments reads only clustering.INPUT_COLUMNS (issue 18's memory): nothing else may matter.
    whole = request.getfixturevalue(frame) if frame == "four_groups" else foreign_vocabulary_features(600, seed=1)
    whole = whole.assign(total_revenue=1.0, country="DE", first_order_at=pd.Timestamp("2024-01-01"))
    narrow = whole[[column for column in clustering.INPUT_COLUMNS if column in whole.columns]]
    assert len(narrow.columns) < len(whole.columns)
    full, reduced = cluster_customers(whole, seed=0), cluster_customers(narrow, seed=0)
    pd.testing.assert_frame_equal(reduced.labels, full.labels)
    pd.testing.assert_frame_equal(reduced.profiles, full.profiles)
    assert str(reduced.metadata()) == str(full.metadata())  # str: NaN coverage equals itself
