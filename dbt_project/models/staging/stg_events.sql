-- One row per accepted web event; visitor_id is the customer when known, else the anonymous id.
{{ stage_events() }}
