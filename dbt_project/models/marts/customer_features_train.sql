-- One row per customer known at the training cut-off (as-of minus the CLV horizon): the same features as
-- customer_features, computed only from rows at or before that cut-off, plus labels from (cut-off, as-of].
with {{ customer_features_at('training_cutoff') }},

{{ future_labels('training_cutoff', 'scoring_cutoff') }}

select * from labelled
