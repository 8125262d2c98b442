-- One row per placed order, for an analytics table (Athena, DuckDB).
-- rehydrate populate parquet --from testdata/events.ndjson --query @queries/order_totals.sql --to out/order_totals
SELECT
    id,
    time,
    detail->>'orderId'                       AS order_id,
    detail->'customer'->>'id'                AS customer_id,
    detail->'customer'->'address'->>'city'   AS city,
    json_get_float(detail, 'total')          AS total,
    detail->>'currency'                      AS currency,
    json_length(detail->'items')             AS item_count,
    json_get_bool(detail, 'express')         AS express
FROM events
WHERE detail_type = 'OrderPlaced'
