-- One row per acquisition_channel: mean predicted CLV, its 95 % interval and the customer count (macro clv_by_dimension).
{{ clv_by_dimension('acquisition_channel') }}
