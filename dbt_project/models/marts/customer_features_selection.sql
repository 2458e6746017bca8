-- One row per customer known at the selection cut-off (as-of minus two CLV horizons): the same features as
-- customer_features, computed only from rows at or before that cut-off, plus labels from (selection cut-off,
-- training cut-off]. The CLV candidates are fitted here and judged on customer_features_train (ml/champion.py).
with {{ customer_features_at('selection_cutoff') }},

{{ future_labels('selection_cutoff', 'training_cutoff') }}

select * from labelled
