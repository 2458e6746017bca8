-- One row per entry_offer: mean predicted CLV, its 95 % interval and the customer count (macro clv_by_dimension).
{{ clv_by_dimension('entry_offer') }}
