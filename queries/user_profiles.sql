-- The read model of a users service: the latest known profile fields per event.
-- rehydrate populate parquet --from testdata/ --query @queries/user_profiles.sql --to out/users --partition-by detail_type
SELECT
    id,
    time,
    detail_type,
    detail->>'userId'                 AS user_id,
    detail->>'name'                   AS name,
    detail->>'email'                  AS email,
    detail->'address'->>'country'     AS country
FROM events
WHERE source = 'com.shop.users'
ORDER BY time
