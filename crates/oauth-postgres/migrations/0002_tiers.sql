-- oauth-postgres: SLA tiers on contracts. `tier_name` names the tier (letters, digits, - _ .);
-- `tier_limits` lists its limits as `requests/window_seconds`, comma-separated
-- ('100/60,5000/86400': 100 a minute and 5,000 a day). Both NULL: unlimited. Changes notify the
-- gateways through the contracts table's trigger, like any other change of a row.
ALTER TABLE oauth_gateway_contracts
    ADD COLUMN IF NOT EXISTS tier_name   text NULL,
    ADD COLUMN IF NOT EXISTS tier_limits text NULL;
